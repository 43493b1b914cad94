from latentseg.train.sampling import StreamBatchSampler


def test_batches_depend_only_on_the_step():
    full = list(StreamBatchSampler(10, 4, seed=1, stream=0, start_step=0, total_steps=6))
    resumed = list(StreamBatchSampler(10, 4, seed=1, stream=0, start_step=3, total_steps=6))
    assert full[3:] == resumed
    assert len(full) == 6 and all(len(b) == 4 for b in full)


def test_each_epoch_is_a_permutation_and_streams_differ():
    batches = list(StreamBatchSampler(8, 4, seed=1, stream=0, start_step=0, total_steps=4))
    first_epoch = [i for b in batches[:2] for i, _ in b]
    assert sorted(first_epoch) == list(range(8))
    other = list(StreamBatchSampler(8, 4, seed=1, stream=1, start_step=0, total_steps=4))
    assert other != batches


def test_ranks_take_disjoint_slices_of_the_global_batch():
    # batch_size is the whole batch of an iteration, whatever the number of ranks: each rank takes its slice
    r0 = list(StreamBatchSampler(16, 4, seed=0, stream=0, start_step=0, total_steps=2, rank=0, world_size=2))
    r1 = list(StreamBatchSampler(16, 4, seed=0, stream=0, start_step=0, total_steps=2, rank=1, world_size=2))
    assert all(len(b) == 2 for b in r0 + r1)
    single = list(StreamBatchSampler(16, 4, seed=0, stream=0, start_step=0, total_steps=2))
    for a, b, s in zip(r0, r1, single, strict=True):
        assert [i for i, _ in a + b] == [i for i, _ in s]
