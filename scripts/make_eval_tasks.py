"""Build the small eval task files shipped in src/llmctl/eval/tasks_data/ (deterministic).

    python scripts/make_eval_tasks.py

capitals.jsonl: 40 four-way multiple-choice questions on national capitals (facts; our own
compilation, CC0), distractors drawn with a fixed seed from the other capitals.
arith.jsonl / arith-cot.jsonl: 40 two-number additions and subtractions, and 8 worked examples
for chain-of-thought demonstrations (generated, CC0).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "llmctl" / "eval" / "tasks_data"
CAPITALS = [
    ("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"),
    ("Portugal", "Lisbon"), ("Japan", "Tokyo"), ("China", "Beijing"), ("Russia", "Moscow"),
    ("Egypt", "Cairo"), ("Kenya", "Nairobi"), ("Canada", "Ottawa"), ("Mexico", "Mexico City"),
    ("Brazil", "Brasília"), ("Argentina", "Buenos Aires"), ("Peru", "Lima"), ("Chile", "Santiago"),
    ("Australia", "Canberra"), ("India", "New Delhi"), ("Greece", "Athens"), ("Turkey", "Ankara"),
    ("Poland", "Warsaw"), ("Sweden", "Stockholm"), ("Norway", "Oslo"), ("Finland", "Helsinki"),
    ("Denmark", "Copenhagen"), ("Ireland", "Dublin"), ("Austria", "Vienna"), ("Hungary", "Budapest"),
    ("Czechia", "Prague"), ("Thailand", "Bangkok"), ("Vietnam", "Hanoi"), ("South Korea", "Seoul"),
    ("Iran", "Tehran"), ("Iraq", "Baghdad"), ("Nigeria", "Abuja"), ("Ethiopia", "Addis Ababa"),
    ("Colombia", "Bogotá"), ("Cuba", "Havana"), ("Belgium", "Brussels"), ("Netherlands", "Amsterdam"),
]  # fmt: skip


def capitals() -> list[dict]:
    rng = random.Random(7)
    items = []
    for country, capital in CAPITALS:
        others = rng.sample([c for _, c in CAPITALS if c != capital], 3)
        choices = [*others, capital]
        rng.shuffle(choices)
        items.append({"country": country, "choices": choices, "answer": choices.index(capital)})
    return items


def arith(n: int, seed: int, cot: bool) -> list[dict]:
    rng = random.Random(seed)
    items = []
    for _ in range(n):
        a, b = rng.randint(2, 49), rng.randint(2, 49)
        op = rng.choice("+-")
        if op == "-" and b > a:
            a, b = b, a
        result = a + b if op == "+" else a - b
        item = {"question": f"What is {a} {op} {b}?", "answer": str(result)}
        if cot:
            word = "plus" if op == "+" else "minus"
            item["rationale"] = f"{a} {word} {b} is {result}."
        items.append(item)
    return items


def write(name: str, rows: list[dict]) -> None:
    path = OUT / name
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(f"{path}: {len(rows)} items")


if __name__ == "__main__":
    write("capitals.jsonl", capitals())
    write("arith.jsonl", arith(40, 11, cot=False))
    write("arith-cot.jsonl", arith(8, 99, cot=True))
