from kafka import TopicPartition

from daemon.batch import Batch
from schemas.messages import DeadLetter
from tests.daemon.factories import item


def test_only_keeps_owned_partitions_and_finished_steps():
    b = Batch(items=[item(0, 5), item(1, 7)], predictions=[None, None])
    b.dead.append(DeadLetter(original=b"x", topic="in", partition=1, offset=8, error_kind="k", error_text="e"))
    for i in b.items:
        b.cover(i.topic, i.partition, i.offset)
    b.cover("in", 1, 8)
    b.steps_done.add("db")
    part = b.only({TopicPartition("in", 1)})
    assert [i.offset for i in part.items] == [7] and len(part.dead) == 1 and len(part.predictions) == 1
    assert part.offsets == {TopicPartition("in", 1): 9}
    # A retry after a rebalance resumes where the checkpoint stopped instead of rewriting.
    assert part.steps_done == {"db"}


def test_merge_keeps_order_and_highest_offsets():
    a, b = Batch(items=[item(0, 1)], predictions=[None]), Batch(items=[item(0, 2)], predictions=[None])
    a.cover("in", 0, 1)
    b.cover("in", 0, 2)
    m = Batch.merge([a, b])
    assert [i.offset for i in m.items] == [1, 2] and m.offsets == {TopicPartition("in", 0): 3}
