"""Python workload for tools/compare.py: builds N records (dicts holding strings,
lists and a nested dict), sorts them two ways, round-trips them through JSON,
groups them by tag and prints digests of every result. Deterministic (seeded).

    python3 dicts.py [N]        # default 40000 (about 1.5 s of CPU under glibc)
"""

import hashlib
import json
import random
import sys


def make_records(n, rng):
    letters = "abcdefghijklmnopqrstuvwxyz"
    records = []
    for i in range(n):
        x = rng.getrandbits(64)  # one draw per record, sliced into its fields
        records.append({
            "id": i,
            "name": letters[x % 26] * (x >> 5 & 3) + "-%06d" % (x >> 8 & 0xFFFFF),
            "score": (x >> 28 & 0xFFFFF) / 1000,
            "tags": [letters[(x >> (48 + t)) % 10] * (t + 1) for t in range(x >> 60 & 7)],
            "attrs": {"k%d" % j: [j] * (x >> 2 & 3) for j in range(x >> 56 & 3)},
        })
    return records


def digest(text):
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 40000
    records = make_records(n, random.Random(12345))

    by_name = sorted(records, key=lambda r: (r["name"], r["id"]))
    by_score = sorted(records, key=lambda r: (-r["score"], r["id"]))
    text = json.dumps(records, sort_keys=True)
    back = json.loads(text)
    assert back == records, "JSON round trip changed the records"

    groups = {}
    for r in back:
        for tag in r["tags"]:
            groups.setdefault(tag, []).append(r["id"])
    labels = sorted("%s:%d" % (r["name"], len(r["tags"])) for r in back)

    print("records", len(back), "json bytes", len(text), "json", digest(text))
    print("by name", digest(",".join(str(r["id"]) for r in by_name)))
    print("by score", digest(",".join(str(r["id"]) for r in by_score)))
    print("groups", len(groups), "largest", max(len(v) for v in groups.values()),
          digest(json.dumps(groups, sort_keys=True)))
    print("labels", digest("\n".join(labels)))


if __name__ == "__main__":
    main()
