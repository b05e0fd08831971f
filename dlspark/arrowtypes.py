"""Spark schemas as Arrow schemas and back, for the column types dlspark writes from its tasks.

PySpark has converters, but only in a private module (`pyspark.sql.pandas.types`) whose signatures changed in 4.x
(its `to_arrow_schema` there asserts a time zone for timestamp columns): dlspark owns this small mapping instead.
Timestamps are microseconds in UTC, as Spark hands them to Python under `spark.sql.session.timeZone=UTC`.
"""

from __future__ import annotations

import pyarrow as pa
from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    BooleanType,
    DataType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    ShortType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from dlspark.errors import DlsparkError

TIMESTAMP = pa.timestamp("us", tz="UTC")
SIMPLE: list[tuple[type[DataType], pa.DataType]] = [
    (StringType, pa.string()),
    (BinaryType, pa.binary()),
    (BooleanType, pa.bool_()),
    (ShortType, pa.int16()),
    (IntegerType, pa.int32()),
    (LongType, pa.int64()),
    (FloatType, pa.float32()),
    (DoubleType, pa.float64()),
    (DateType, pa.date32()),
    (TimestampType, TIMESTAMP),
]


class UnsupportedTypeError(DlsparkError):
    """A column type this mapping does not cover (a programming error, not a data error)."""


def arrow_type(spark_type: DataType) -> pa.DataType:
    """The Arrow type of a Spark column type."""
    if isinstance(spark_type, DecimalType):
        return pa.decimal128(spark_type.precision, spark_type.scale)
    if isinstance(spark_type, ArrayType):
        return pa.list_(pa.field("element", arrow_type(spark_type.elementType), spark_type.containsNull))
    if isinstance(spark_type, StructType):
        return pa.struct(list(arrow_schema(spark_type)))
    for spark_class, arrow in SIMPLE:
        if type(spark_type) is spark_class:
            return arrow
    raise UnsupportedTypeError(f"no Arrow type for the Spark type {spark_type.simpleString()}")


def spark_type(arrow: pa.DataType) -> DataType:
    """The Spark column type of an Arrow type."""
    if pa.types.is_decimal(arrow):
        return DecimalType(arrow.precision, arrow.scale)
    if pa.types.is_list(arrow) or pa.types.is_large_list(arrow):
        return ArrayType(spark_type(arrow.value_type), arrow.value_field.nullable)
    if pa.types.is_struct(arrow):
        return spark_schema(pa.schema(list(arrow)))
    if pa.types.is_timestamp(arrow):
        return TimestampType()
    if pa.types.is_large_string(arrow):
        return StringType()
    for spark_class, simple in SIMPLE:
        if arrow == simple:
            return spark_class()
    raise UnsupportedTypeError(f"no Spark type for the Arrow type {arrow}")


def arrow_schema(schema: StructType) -> pa.Schema:
    """The Arrow schema of a Spark schema: the same names, order and nullability."""
    return pa.schema([pa.field(f.name, arrow_type(f.dataType), f.nullable) for f in schema.fields])


def spark_schema(schema: pa.Schema) -> StructType:
    """The Spark schema of an Arrow schema: the same names, order and nullability."""
    return StructType([StructField(f.name, spark_type(f.type), f.nullable) for f in schema])
