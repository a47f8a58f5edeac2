"""``results.parquet`` straight from a run's columns with pyarrow, without pandas.

The Arrow schema is made from the column contract (:data:`hardnir.schema.COLUMN_KINDS`): text as
``large_string``, category columns as dictionaries of their categories (``severity`` ordered), ``changed`` as
bool, ``started_at`` as UTC microseconds, ``duration_s`` as double. The file carries the same ``pandas`` metadata
``DataFrame.to_parquet`` writes, so ``pandas.read_parquet`` gives the contract dtypes as before. Rows are written
in row groups of :data:`ROW_GROUP_ROWS`, so only one group's Arrow arrays are in memory at a time.

The arrays are made with a string builder and from buffers, not with ``pyarrow.array``: that one imports pandas
(to ask whether its input is a pandas object), about 50 MB of RSS, which writing a run does not need.

The Arrow arrays hardnir makes and reads come from :data:`POOL`, the C allocator's pool, which gives freed memory
back: pyarrow's default pool (mimalloc, or jemalloc) kept the pages a read freed, 30-50 MB after reading one
1,000-host run, and a long-lived process that audits again and again grew with them. Only the Parquet encoder's own
buffers (about 200 kB for a 1,000-host run) still come from the default pool: pyarrow lets no caller choose their
pool. The process's default pool is not changed: that is a library user's choice (the CLI, a short process of its
own, asks for the system pool).
"""

from __future__ import annotations

import array
import json
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final

import pyarrow as pa
import pyarrow.parquet as pq

from hardnir.store.columns import RunColumns

if TYPE_CHECKING:
    import pandas as pd

POOL: Final = pa.system_memory_pool()
ROW_GROUP_ROWS: Final[int] = 65536
TIMESTAMP: Final = pa.timestamp("us", tz="UTC")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)

#: Kind -> (Arrow type, pandas_type, numpy_type) of the ``pandas`` metadata; categories are made per column.
_SIMPLE: Final[dict[str, tuple[pa.DataType, str, str]]] = {
    "text": (pa.large_string(), "object", "string"),
    "bool": (pa.bool_(), "bool", "bool"),
    "timestamp": (TIMESTAMP, "datetimetz", "datetime64[us]"),
    "float": (pa.float64(), "float64", "float64"),
}


_TYPECODES: Final[dict[str, str]] = {"int8": "b", "int16": "h", "int32": "i"}


def _index_type(categories: tuple[str, ...]) -> pa.DataType:
    """The smallest signed integer type for the codes of ``categories`` (what pandas uses)."""
    return pa.int8() if len(categories) < 2**7 else pa.int16() if len(categories) < 2**15 else pa.int32()


def _field(name: str, kind: str, categories: tuple[str, ...] | None) -> tuple[pa.Field, dict[str, object]]:
    """The Arrow field of a column and its entry in the ``pandas`` metadata."""
    meta: dict[str, object] | None = None
    if categories is not None:
        index = _index_type(categories)
        arrow_type: pa.DataType = pa.dictionary(index, pa.string(), ordered=kind == "ordered")
        pandas_type, numpy_type = "categorical", str(index)
        meta = {"num_categories": len(categories), "ordered": kind == "ordered"}
    else:
        arrow_type, pandas_type, numpy_type = _SIMPLE[kind]
        meta = {"timezone": "UTC"} if kind == "timestamp" else None
    entry: dict[str, object] = {"name": name, "field_name": name, "pandas_type": pandas_type,
                                "numpy_type": numpy_type, "metadata": meta}
    return pa.field(name, arrow_type), entry


def _pandas_version() -> str:
    try:
        return version("pandas")
    except PackageNotFoundError:  # pragma: no cover - pandas is a dependency
        return ""


def arrow_schema(columns: RunColumns) -> pa.Schema:
    """The Arrow schema of a run's columns, with the ``pandas`` metadata."""
    fields, entries = [], []
    for name in columns.names:
        kind = columns.kinds[name]
        made, entry = _field(name, kind, columns.categories.get(name) if kind in ("category", "ordered") else None)
        fields.append(made)
        entries.append(entry)
    pandas_meta = {
        "index_columns": [], "column_indexes": [], "columns": entries, "attributes": {},
        "creator": {"library": "pyarrow", "version": pa.__version__}, "pandas_version": _pandas_version(),
    }
    return pa.schema(fields, metadata={b"pandas": json.dumps(pandas_meta).encode("utf-8")})


def _strings(values: list[object], arrow_type: pa.DataType) -> pa.Array:
    """Text (None is null) as an Arrow array of ``arrow_type`` (a string type)."""
    builder = pa.lib.StringBuilder(memory_pool=POOL)
    builder.append_values(values)
    built: pa.Array = builder.finish()
    return built if built.type == arrow_type else built.cast(arrow_type, memory_pool=POOL)


def _fixed(arrow_type: pa.DataType, typecode: str, values: list[float]) -> pa.Array:
    """Numbers without nulls as an Arrow array of ``arrow_type``, from a buffer of C ``typecode`` values."""
    return pa.Array.from_buffers(arrow_type, len(values), [None, pa.py_buffer(array.array(typecode, values))])


def _bools(values: list[object]) -> pa.Array:
    """Booleans without nulls as an Arrow bool array (a bitmap, least significant bit first)."""
    bits = bytearray((len(values) + 7) // 8)
    for index, value in enumerate(values):
        if value:
            bits[index >> 3] |= 1 << (index & 7)
    return pa.Array.from_buffers(pa.bool_(), len(values), [None, pa.py_buffer(bytes(bits))])


def _micros(value: object) -> int:
    assert isinstance(value, datetime)
    return (value - _EPOCH) // _MICROSECOND


def _array(field: pa.Field, kind: str, values: list[object], categories: tuple[str, ...] | None) -> pa.Array:
    """One column of one row group (plain: categories, booleans, timestamps and floats without None)."""
    if categories is not None:
        codes = {category: code for code, category in enumerate(categories)}
        indices = _fixed(field.type.index_type, _TYPECODES[str(field.type.index_type)], [codes[str(v)] for v in values])
        return pa.DictionaryArray.from_arrays(indices, _strings(list(categories), pa.string()),
                                              ordered=field.type.ordered, memory_pool=POOL)
    if kind == "bool":
        return _bools(values)
    if kind == "timestamp":
        return _fixed(TIMESTAMP, "q", [_micros(v) for v in values])
    if kind == "float":
        return _fixed(pa.float64(), "d", [float(v) for v in values])  # type: ignore[arg-type]  # plain: numbers
    return _strings(values, field.type)


def write_parquet(handle: IO[bytes], columns: RunColumns) -> None:
    """Write ``columns`` (plain: see :attr:`RunColumns.plain`) to ``handle`` as Parquet (snappy, like pandas)."""
    schema = arrow_schema(columns)
    cats = [columns.categories.get(n) if columns.kinds[n] in ("category", "ordered") else None
            for n in columns.names]
    with pq.ParquetWriter(handle, schema, compression="snappy", memory_pool=POOL) as writer:
        for start in range(0, max(len(columns), 1), ROW_GROUP_ROWS):
            stop = start + ROW_GROUP_ROWS
            arrays = [_array(schema.field(i), columns.kinds[n], columns.values[n][start:stop], cats[i])
                      for i, n in enumerate(columns.names)]
            writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))


def read_parquet(path: Path, columns: Collection[str] | None = None) -> pd.DataFrame:
    """A Parquet file as ``pandas.read_parquet`` reads it (its ``pandas`` metadata gives the dtypes), from :data:`POOL`:
    all its columns, or only those of ``columns`` it has, in the file's order.

    ``pandas.read_parquet`` cannot be given a pool for the read itself (only for the conversion), so the file is
    read through a dataset scan, which can.
    """
    import pyarrow.dataset as ds

    dataset = ds.dataset(path, format="parquet")
    names = None if columns is None else [name for name in dataset.schema.names if name in columns]
    frame: pd.DataFrame = dataset.to_table(columns=names, memory_pool=POOL).to_pandas(memory_pool=POOL)
    return frame
