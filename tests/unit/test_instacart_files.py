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


def products(bad_line: str) -> Callable[[Path], None]:
    """products.csv with a good line for product 35 and `bad_line` (line 3) for product 204, both bought."""

    def write(directory: Path) -> None:
        (directory / "products.csv").write_text(
            f"product_id,product_name,aisle_id,department_id\n35,Eggs,86,16\n{bad_line}\n"
        )

    return write


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
        (products("204,Whole milk\x00,3,16"), "products.csv, line 3: product_name 'Whole milk\\x00': must not contain "
                                              "the NUL character"),
        (products(f"204,Whole milk,3,{'9' * 200}"), f"products.csv, line 3: department_id '{'9' * 80}': String should "
                                                   "have at most 100 characters"),
        (products(f"204,Whole milk,{'7' * 120},16"), f"products.csv, line 3: aisle_id '{'7' * 80}': String should "
                                                    "have at most 100 characters"),
    ],
    ids=["missing-file", "missing-column", "not-a-number", "hour-out-of-range", "days-not-a-number", "short-row",
         "product-id-with-a-space", "not-utf-8", "product-name-with-nul", "department-id-too-long",
         "aisle-id-too-long"],
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


@pytest.mark.parametrize(
    ("bad_line", "error"),
    [
        ("2,7,second,0,10,3,42,1,1", "invalid literal for int() with base 10: 'second'"),
        ("2,7,2,0,10,3,42,first,1", "add_to_cart_order must be a whole number from 1 to 10000 or empty, not 'first'"),
        ("2,7,2,0,10,3,42,0,1", "add_to_cart_order must be a whole number from 1 to 10000 or empty, not '0'"),
        ("2,7,2,0,10,3,42,2.5,1", "add_to_cart_order must be a whole number from 1 to 10000 or empty, not '2.5'"),
        ("2,7,2,0,10,3,42,inf,1", "add_to_cart_order must be a whole number from 1 to 10000 or empty, not 'inf'"),
        ("2,7,2,0,10,3,42,2,nan", "reordered must be a whole number from 0 to 1 or empty, not 'nan'"),
        ("2,7,2,0,10,3,42,2,inf", "reordered must be a whole number from 0 to 1 or empty, not 'inf'"),
        ("2,7,2,0,10,3,42,2,2", "reordered must be a whole number from 0 to 1 or empty, not '2'"),
    ],
)
def test_a_flat_table_out_of_the_format_is_refused_naming_the_file_and_line_and_nothing_is_written(
    tmp_path: Path, bad_line: str, error: str
) -> None:
    flat = tmp_path / "flat.csv"
    flat.write_text(
        "order_id,user_id,order_number,order_dow,order_hour_of_day,days_since_prior_order,product_id,"
        f"add_to_cart_order,reordered\n1,7,1,0,10,,42,1,0\n{bad_line}\n"
    )

    with pytest.raises(InvalidDataset) as refused:
        split_flat_table(flat, tmp_path / "out")

    assert str(refused.value) == f"{flat}, line 3: {error}"
    assert not (tmp_path / "out").exists()


def test_a_flat_table_exported_with_floats_splits_into_whole_numbers(tmp_path: Path) -> None:
    flat = tmp_path / "flat.csv"
    flat.write_text(
        "order_id,user_id,order_number,order_dow,order_hour_of_day,days_since_prior_order,product_id,"
        "add_to_cart_order,reordered\n1,7,1,0,10,,42,1.0,0.0\n2,7,2,0,10,3.0,42,1.0,1.0\n2,7,2,0,10,3.0,43,,\n"
    )

    assert split_flat_table(flat, tmp_path / "out") == 1
    assert (tmp_path / "out" / "orders.csv").read_text().splitlines()[1:] == ["1,7,prior,1,0,10,", "2,7,train,2,0,10,3"]
    assert (tmp_path / "out" / "order_products__prior.csv").read_text().splitlines()[1:] == ["1,42,1,0"]
    assert (tmp_path / "out" / "order_products__train.csv").read_text().splitlines()[1:] == ["2,42,1,1", "2,43,,"]


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
