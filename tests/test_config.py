import pytest

from conftest import REPO, make_config
from dlspark.config import load_config, row_group_rows, settings_hash
from dlspark.errors import ConfigError
from dlspark.layout import Layout
from dlspark.stages import STAGES
from dlspark.stages.ingest import check_inputs

CONF = REPO / "conf"


def test_every_environment_file_loads_on_top_of_base():
    local = load_config(CONF / "local.yaml")
    docker = load_config(CONF / "docker.yaml")
    cluster = load_config(CONF / "cluster.yaml", ["data.root=hdfs:///data/dlspark"])
    assert local.spark.master == "local[*]" and local.data.root == "data/demo"
    assert docker.spark.master == "spark://spark-master:7077" and docker.data.root == "/data/dlspark"
    assert cluster.spark.ship_package is True
    assert set(local.feeds) == set(cluster.feeds) == {"tills", "web"}  # feeds come from base.yaml


def test_cluster_config_without_a_data_root_names_the_missing_key():
    with pytest.raises(ConfigError, match=r"data\.root: required but not set"):
        load_config(CONF / "cluster.yaml")


def test_unknown_key_is_named_with_its_value():
    with pytest.raises(ConfigError, match=r"spark\.mastr: unknown key \(value 'local\[2\]'\)"):
        load_config(CONF / "local.yaml", ["spark.mastr=local[2]"])


def test_wrong_type_is_named_with_its_value():
    with pytest.raises(ConfigError, match=r"clean\.max_quantity: .*integer.*\(got 'lots'\)"):
        load_config(CONF / "local.yaml", ["clean.max_quantity=lots"])


def test_out_of_range_value_is_refused():
    with pytest.raises(ConfigError, match=r"dedup\.min_similarity"):
        load_config(CONF / "local.yaml", ["dedup.min_similarity=1.5"])


def test_overrides_are_typed_and_reach_nested_and_free_form_keys():
    cfg = load_config(
        CONF / "local.yaml",
        [
            "clean.max_quantity=50",
            "dedup.same_category=false",
            "spark.conf.spark.executor.memory=8g",
            "feeds.tills.options.sep=;",
            "feeds.tills.fields=[line_id, receipt_no, store_id, loyalty_card, plu, description, dept, qty, price, "
            "sold_at, till_no]",
            "feeds.tills.columns.customer_id=till_no",
        ],
    )
    assert cfg.clean.max_quantity == 50
    assert cfg.dedup.same_category is False
    assert cfg.spark.conf["spark.executor.memory"] == "8g"
    assert cfg.spark.conf["spark.sql.shuffle.partitions"] == "8"  # base.yaml's entries survive
    assert cfg.feeds["tills"].options == {"sep": ";"}
    assert cfg.feeds["tills"].fields[-1] == "till_no"
    assert cfg.feeds["tills"].columns["customer_id"] == "till_no"


def test_override_without_equals_sign_is_explained():
    with pytest.raises(ConfigError, match="expected section.key=value"):
        load_config(CONF / "local.yaml", ["data.root"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("feeds.web.columns.colour=hue", r"unknown canonical field\(s\) \['colour'\]"),
        ("feeds.tills.fields=[line_id, receipt_no]", r"not in fields"),
        ("feeds.web.format=xml", r"feeds\.web\.format"),
        ("feeds.tills.options.sep=||", r"feeds\.tills: .*options\.sep '\|\|' must be one character"),
        ('feeds.tills.options.sep="', r"options\.sep '\"' must be one character, not a quote"),
        ("feeds.tills.options.header=false", r"options \['header'\] not understood: .*takes one option, sep"),
        ("feeds.web.options.sep=;", r"feeds\.web: .*options \['sep'\] not understood"),
    ],
)
def test_a_bad_feed_mapping_is_refused(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(CONF / "local.yaml", [override])


def test_a_feed_must_map_every_required_field(tmp_path):
    env = tmp_path / "env.yaml"
    env.write_text("data: {root: x}\nfeeds:\n  pos:\n    format: json\n    path: pos\n    columns: {event_id: id}\n")
    with pytest.raises(ConfigError, match=r"feeds\.pos: columns must map the required field\(s\) \['order_id'"):
        load_config(env)


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_missing_raw_directory_names_the_feed_key(tmp_path):
    cfg = make_config(tmp_path)
    with pytest.raises(ConfigError, match=r"feeds\.tills\.path: .*/raw/tills does not exist"):
        check_inputs(cfg)


def test_layout_makes_local_roots_absolute_and_keeps_uris(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Layout.at("data").events == f"{tmp_path}/data/events"
    assert Layout.at("hdfs:///x/").quarantine("clean") == "hdfs:///x/quarantine/stage=clean"


@pytest.mark.parametrize(
    "rows, mode, workers, expected",
    [
        (14_087, "driver", 2, 3_522),  # one reader (driver mode): four row groups
        (14_087, "barrier", 2, 1_761),  # two barrier workers: four row groups each
        (3_000, "barrier", 2, 1_024),  # the floor: three row groups, still one per worker at least
        (1_500, "barrier", 4, 375),  # under the floor rather than fewer row groups than workers
        (10_000_000, "barrier", 8, 65_536),  # the ceiling
    ],
)
def test_auto_row_groups_give_every_reader_of_the_training_split_row_groups_to_shuffle(rows, mode, workers, expected):
    cfg = make_config("/tmp/dlspark-unused", f"train.mode={mode}", f"train.workers={workers}")
    assert cfg.shards.rows_per_row_group == "auto"  # the default
    assert row_group_rows(rows, cfg) == expected
    assert -(-rows // expected) >= (workers if mode == "barrier" else 1)
    assert row_group_rows(rows, make_config("/tmp/dlspark-unused", "shards.rows_per_row_group=64")) == 64


def test_the_shards_are_stale_when_the_trainers_readers_change_and_not_for_other_training_settings():
    settings = STAGES["shards"].settings
    base = settings_hash(make_config("/tmp/dlspark-unused"), settings)
    assert settings_hash(make_config("/tmp/dlspark-unused", "train.workers=3"), settings) != base
    assert settings_hash(make_config("/tmp/dlspark-unused", "train.mode=barrier"), settings) != base
    assert settings_hash(make_config("/tmp/dlspark-unused", "train.epochs=3"), settings) == base
    assert settings_hash(make_config("/tmp/dlspark-unused", "mining.min_support=0.5"), settings) != base
