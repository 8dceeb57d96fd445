"""moto server loses SQS deletes that overlap (issue 18, target 9: the drain stall).

moto's DeleteMessage rebuilds the queue's message list from a copy and assigns it back, with no
lock. Two deletes served at once can each copy the list before the other assigns, and the one
that assigns last puts the other's message back. Both calls succeed; the message stays in flight
until its visibility timeout, then comes back. That is the 201st message of a 200-message drain
that waited ~50 s for a 60 s visibility timeout.

Each round sends N messages, receives them all (a 900 s visibility timeout, so none comes back on
its own), deletes every one, then reads what the queue still holds. Deleted two ways, alternating:
- DeleteMessage from 8 threads at once (how salve's workers deleted before);
- DeleteMessageBatch from one caller (how salve's daemon deletes now).
Every delete succeeds both ways; anything the queue still holds is a delete moto lost.
"""
import os
import time
from concurrent.futures import ThreadPoolExecutor

import boto3

endpoint = os.environ["SALVE_MOTO_ENDPOINT"]
messages = int(os.environ.get("SALVE_RACE_MESSAGES", "200"))
rounds = int(os.environ.get("SALVE_RACE_ROUNDS", "5"))
sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")


def queue_with_messages_in_flight(name):
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "900"})["QueueUrl"]
    for start in range(0, messages, 10):
        entries = [
            {"Id": str(i), "MessageBody": f"message {start + i}"}
            for i in range(min(10, messages - start))
        ]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)
    receipts = []
    while len(receipts) < messages:
        out = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        receipts += [m["ReceiptHandle"] for m in out.get("Messages", [])]
    return url, receipts


def concurrently(url, receipts):
    def delete(receipt):
        sqs.delete_message(QueueUrl=url, ReceiptHandle=receipt)

    # A DeleteMessage that fails raises, and ends the script; so none here failed.
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(delete, receipts))
    return 0


def batched(url, receipts):
    failed = 0
    for start in range(0, len(receipts), 10):
        entries = [
            {"Id": str(i), "ReceiptHandle": r} for i, r in enumerate(receipts[start : start + 10])
        ]
        failed += len(sqs.delete_message_batch(QueueUrl=url, Entries=entries).get("Failed", []))
    return failed


def still_held(url):
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


lost = {"DeleteMessage, 8 at once": 0, "DeleteMessageBatch, one caller": 0}
for round_ in range(rounds):
    for way, delete in zip(lost, (concurrently, batched)):
        url, receipts = queue_with_messages_in_flight(f"race-{round_}-{delete.__name__}-{time.time_ns()}")
        failed = delete(url, receipts)
        left = still_held(url)
        lost[way] += left
        print(f"round {round_ + 1}  {way:<32} {len(receipts)} deleted, {failed} failed, {left} still in the queue")
        sqs.delete_queue(QueueUrl=url)
print()
for way, n in lost.items():
    print(f"{way:<32} lost {n} of {messages * rounds} deletes")
