"""Write the README's generic-table example: an events CSV and an item table with categorical,
multi-valued, numeric and vector columns, plus a table of new items no event mentions.

    python scripts/make_feature_example.py --out example

Items belong to one of a few brands and carry tags; each user prefers one brand and mostly moves
between items of it, so the features carry real signal. Vectors (`vectors.npy` + `vector_ids.txt`)
stand for embeddings a user made with their own model: a noisy code of the brand. `new_items.csv`
holds items that appear in no event (ids from 9001), for `seqrec-recommend item_table=...`.
Deterministic for a given --seed.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

BRANDS = ("acme", "globex", "initech", "umbrella")
TAGS = ("red", "blue", "green", "large", "small", "sale")


def item_rows(ids: range, rng: np.random.Generator) -> list[dict]:
    rows = []
    for i in ids:
        brand = BRANDS[i % len(BRANDS)]
        tags = sorted(rng.choice(TAGS, size=rng.integers(1, 4), replace=False).tolist())
        price = round(float(np.exp(rng.normal(3 + (i % len(BRANDS)), 0.5))), 2)
        rows.append({"item_id": i, "brand": brand, "tags": "|".join(tags), "price": price})
    return rows


def events(n_users: int, n_items: int, rng: np.random.Generator) -> list[dict]:
    out, t = [], 1_700_000_000
    for u in range(n_users):
        liked = u % len(BRANDS)
        same_brand = [i for i in range(1, n_items + 1) if i % len(BRANDS) == liked]
        for _ in range(int(rng.integers(6, 20))):
            item = int(rng.choice(same_brand)) if rng.random() < 0.8 else int(rng.integers(1, n_items + 1))
            t += int(rng.integers(60, 3600))
            out.append({"user_id": f"u{u}", "item_id": item, "timestamp": t})
    return out


def write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("example"))
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--items", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "events.csv", events(args.users, args.items, rng))
    write_csv(args.out / "items.csv", item_rows(range(1, args.items + 1), rng))
    new_ids = range(9001, 9011)
    write_csv(args.out / "new_items.csv", item_rows(new_ids, rng))
    all_ids = [*range(1, args.items + 1), *new_ids]
    codes = np.eye(len(BRANDS), dtype=np.float32)[[i % len(BRANDS) for i in all_ids]]
    vectors = np.concatenate([codes, rng.normal(0, 0.3, size=(len(all_ids), 4)).astype(np.float32)], axis=1)
    np.save(args.out / "vectors.npy", vectors)
    (args.out / "vector_ids.txt").write_text("".join(f"{i}\n" for i in all_ids))
    print(f"Wrote {args.out}/events.csv, items.csv, new_items.csv, vectors.npy, vector_ids.txt")


if __name__ == "__main__":
    main()
