"""The offline evaluation's files (Instacart format): a file missing or out of the format is refused with its
name and line, not a traceback."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from feedlocal.instacart import FLAT_COLUMNS, InvalidDataset, load, split_flat_table

DATA = Path(__file__).resolve().parents[1] / "data" / "instacart_synthetic"


def replace_line(name: str, number: int, text: str) -> Callable[[Path], None]:
    def change(directory: Path) -> None:
        lines = (directory / name).read_text().splitlines()
        lines[number - 1] = text
        (directory / name).write_text("\n".join(lines) + "\n")

    return change


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda d: (d / "order_products__prior.csv").unlink(), "order_products__prior.csv: [Errno 2] No such file"),
        (replace_line("orders.csv", 1, "order_id,user_id,eval_set,order_number,order_dow,hour,days_since_prior_order"),
         "orders.csv: no column order_hour_of_day (expected order_id, user_id, eval_set, order_number, "
         "order_hour_of_day, days_since_prior_order)"),
        (replace_line("orders.csv", 3, "1001,1,prior,two,0,19,5"),
         "orders.csv, line 3: invalid literal for int() with base 10: 'two'"),
        (replace_line("orders.csv", 3, "1001,1,prior,2,0,24,5"),
         "orders.csv, line 3: order_hour_of_day must be 0–23 and days_since_prior_order 0–3650 or empty"),
        (replace_line("orders.csv", 3, "1001,1,prior,2,0,19,nan"),
         "orders.csv, line 3: order_hour_of_day must be 0–23 and days_since_prior_order 0–3650 or empty"),
        (replace_line("orders.csv", 3, "1001,1,prior"), "orders.csv, line 3: fewer values than columns"),
        (replace_line("order_products__prior.csv", 2, "1000,frozen peas,1,0"),
         "order_products__prior.csv, line 2: product_id 'frozen peas' is not 1–63 letters, digits or _ . : -"),
        (lambda d: (d / "orders.csv").write_bytes(b"order_id,user_id\n1000,caf\xe9\n"),
         "orders.csv: 'utf-8' codec can't decode byte 0xe9"),
    ],
    ids=["missing-file", "missing-column", "not-a-number", "hour-out-of-range", "days-not-a-number", "short-row",
         "product-id-with-a-space", "not-utf-8"],
)  # fmt: skip
def test_a_dataset_out_of_the_format_is_refused_naming_the_file_and_line(
    tmp_path: Path, change: Callable[[Path], None], error: str
) -> None:
    directory = tmp_path / "dataset"
    shutil.copytree(DATA, directory)
    change(directory)

    with pytest.raises(InvalidDataset) as refused:
        load(directory)

    assert str(refused.value).startswith(f"{directory}/{error}")


def test_a_flat_table_out_of_the_format_is_refused_naming_the_file_and_line(tmp_path: Path) -> None:
    flat = tmp_path / "flat.csv"
    flat.write_text(
        "order_id,user_id,order_number,order_dow,order_hour_of_day,days_since_prior_order,product_id,"
        "add_to_cart_order,reordered\n1,7,1,0,10,,42,1,0\n2,7,second,0,10,3,42,1,1\n"
    )

    with pytest.raises(InvalidDataset, match=r"flat\.csv, line 3: invalid literal for int\(\) with base 10: 'second'"):
        split_flat_table(flat, tmp_path / "out")


def test_a_flat_table_of_the_dataset_splits_back_into_the_same_histories(tmp_path: Path) -> None:
    orders = {row["order_id"]: row for row in csv.DictReader((DATA / "orders.csv").open())}
    flat = tmp_path / "flat.csv"
    with flat.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(FLAT_COLUMNS)
        for name in ("order_products__prior.csv", "order_products__train.csv"):
            for line in csv.DictReader((DATA / name).open()):
                order = orders[line["order_id"]]
                writer.writerow([*(order[c] for c in FLAT_COLUMNS[:6]), *(line[c] for c in FLAT_COLUMNS[6:])])

    assert split_flat_table(flat, tmp_path / "split") == 60
    assert load(tmp_path / "split") == load(DATA)
