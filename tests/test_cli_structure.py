"""The CLI's structure (issue 19): exit status 2 for the user's mistakes only, 1 with a
traceback hint for internal errors; one executor factory behind the CLI and
``wkview.utils``; engine and conversion options declared once."""

from __future__ import annotations

import argparse
import dataclasses
import inspect

import numpy as np
import pytest
import typer

import wkview.tools
from wkview import cli
from wkview.cli import ConvertOptions, EngineOptions, main
from wkview.convert import convert
from wkview.executors import ExecutorOptionsError, LazyPool, executor_for_strategy, parse_job_resources
from wkview.sample import em_like
from wkview.utils import executor_for, get_executor_for_args

from .test_cli import run_installed


@pytest.fixture
def dataset(tmp_path):
    np.save(tmp_path / "vol.npy", em_like((16, 16, 8)))
    convert(tmp_path / "vol.npy", tmp_path / "ds", (1, 1, 1), downsample=False, block_len=8, file_len=2)
    return tmp_path / "ds"


# -- exit status ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["info", "{tmp}/nothing"],  # not a dataset
        ["export", "{ds}", "{tmp}/out", "--layer", "nope"],  # no such layer
        ["export", "{ds}", "{tmp}/out", "--mag", "4"],  # no such mag
        ["export", "{ds}", "{tmp}/out", "--bbox", "0,0,0,0,4,4"],  # an empty box
        ["verify", "{ds}", "--distribution-strategy", "dask"],  # no scheduler (DASK_ADDRESS unset)
        ["verify", "{ds}", "--job-resources", "mem"],  # not KEY=VALUE
        ["compress", "{ds}", "--compression", "lz4", "--compression-level", "3"],  # LZ4 has no level
        ["convert", "{tmp}/vol.npy", "{tmp}/new", "--voxel-size", "1,1,1", "--dtype", "int8"],  # narrowing
        ["convert", "{tmp}/vol.npy", "{ds}", "--voxel-size", "1,1,1"],  # existing target
        ["preview", "{ds}", "{tmp}/p.png", "--mag", "3"],  # not a mag
    ],
)
def test_user_mistakes_exit_2_with_one_line(dataset, tmp_path, args, monkeypatch, capsys):
    monkeypatch.delenv("DASK_ADDRESS", raising=False)
    status = main([a.format(tmp=tmp_path, ds=dataset) for a in args])
    err = capsys.readouterr().err
    assert status == 2, err
    assert len(err.strip().splitlines()) == 1 and "bug" not in err
    assert err.startswith(f"wkview {args[0]}: error: ")


def test_existing_target_names_the_flag(dataset, tmp_path, capsys):
    assert main(["convert", str(tmp_path / "vol.npy"), str(dataset), "--voxel-size", "1,1,1"]) == 2
    assert "use --overwrite" in capsys.readouterr().err


@pytest.mark.parametrize("error", [ValueError("bad value"), TypeError("bad type"), KeyError("k"), ZeroDivisionError()])
def test_internal_errors_exit_1_with_a_traceback_hint(dataset, monkeypatch, capsys, error):
    # a bug inside wkview: the library function the command calls fails on its own
    def broken(*args, **kwargs):
        raise error

    monkeypatch.setattr(wkview.tools, "dataset_info", broken)
    monkeypatch.delenv(cli.TRACEBACK_ENV, raising=False)
    assert main(["info", str(dataset)]) == 1
    err = capsys.readouterr().err
    first, hint = err.strip().splitlines()
    assert first.startswith(f"wkview info: internal error: {type(error).__name__}")
    assert f"{cli.TRACEBACK_ENV}=1" in hint and "Traceback" not in err
    monkeypatch.setenv(cli.TRACEBACK_ENV, "1")
    assert main(["info", str(dataset)]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "in broken" in err


def test_exit_codes_through_the_installed_command(dataset, tmp_path):
    assert "not a WKW dataset" in run_installed("info", str(tmp_path / "nothing"), check=2).stderr
    run_installed("info", str(dataset), check=0)


# -- one executor factory ---------------------------------------------------------------------------


def _workers(executor) -> int:
    return executor._max_workers


def test_cli_and_utils_make_their_executors_in_the_one_factory(monkeypatch):
    monkeypatch.delenv("DASK_ADDRESS", raising=False)  # set where the engine tests run: it is an address
    namespace = argparse.Namespace(distribution_strategy="multiprocessing", jobs=3)
    with EngineOptions(jobs=3).executor() as a, get_executor_for_args(namespace) as b, executor_for(
        namespace, None
    ) as c, executor_for_strategy("multiprocessing", jobs=3) as d:
        # the command's pool starts at its first job (a LazyPool); the pool it starts is the same
        assert isinstance(a, LazyPool) and not a.started
        assert {type(e) for e in (a.pool, b, c)} == {type(d)}
        assert _workers(a) == _workers(a.pool) == _workers(b) == _workers(c) == _workers(d) == 3
    # the same options are refused the same way, whichever caller passes them on
    bad = dict(distribution_strategy="dask", job_resources="mem=1G", dask_address=None)
    errors = []
    for make in (
        lambda: EngineOptions(**bad).executor().__enter__(),
        lambda: get_executor_for_args(argparse.Namespace(**bad)),
        lambda: executor_for(argparse.Namespace(**bad), None).__enter__(),
        lambda: executor_for_strategy("dask", job_resources="mem=1G"),
    ):
        with pytest.raises(ExecutorOptionsError) as info:
            make()
        errors.append(str(info.value))
    assert len(set(errors)) == 1 and "scheduler address" in errors[0]


def test_no_second_executor_factory_in_the_callers():
    # the callers build executors only through executor_for_strategy
    for module in (cli, wkview.utils):
        source = inspect.getsource(module)
        assert "executor_for_strategy(" in source
        assert "get_executor(" not in source, module.__name__


def test_job_resources_text_forms():
    assert parse_job_resources('{"mem": "2G", "time": "1:00:00"}') == {"mem": "2G", "time": "1:00:00"}
    assert parse_job_resources("mem=2G, time=1:00:00") == {"mem": "2G", "time": "1:00:00"}
    assert parse_job_resources(None) == {} and parse_job_resources({"a": 1}) == {"a": 1}
    for bad in ("[1, 2]", "{oops", "mem"):
        with pytest.raises(ExecutorOptionsError):
            parse_job_resources(bad)
    with pytest.raises(ExecutorOptionsError, match="unknown distribution_strategy"):
        executor_for_strategy("carrier pigeon")
    with pytest.raises(ExecutorOptionsError, match="jobs"):
        executor_for_strategy("multiprocessing", jobs=0)


# -- options declared once --------------------------------------------------------------------------


def _flags(name: str) -> list[str]:
    command = typer.main.get_command(cli.app).commands[name]
    return [opt for param in command.params for opt in param.opts]


def test_engine_options_declared_once_on_every_engine_command():
    engine = ["--jobs", "--distribution-strategy", "--job-resources", "--dask-address", "--quiet"]
    for name in ("convert", "convert-raw", "downsample", "compress", "check-equality", "export", "verify"):
        assert all(flag in _flags(name) for flag in engine), name
    source = inspect.getsource(cli)
    assert source.count('"--distribution-strategy"') == 1 and source.count('"--dask-address"') == 1


def test_conversion_options_are_one_frozen_dataclass_and_reach_convert():
    options = ConvertOptions((1.0, 2.0, 3.0), compression="lz4")
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.layer_name = "other"  # type: ignore[misc]
    # every field is a keyword argument of convert(): a new field reaches it by name
    params = inspect.signature(convert).parameters
    assert set(options.as_kwargs()) <= set(params)
    assert options.as_kwargs()["compression"] == "lz4" and options.as_kwargs()["voxel_size"] == (1.0, 2.0, 3.0)
    # every field is a flag of convert; convert-raw takes all but the layer's --dtype and the
    # channel split (a raw volume has one channel)
    fields = {f.name for f in dataclasses.fields(ConvertOptions)}
    convert_params = {p.name for p in typer.main.get_command(cli.app).commands["convert"].params}
    raw_params = {p.name for p in typer.main.get_command(cli.app).commands["convert-raw"].params}
    assert fields <= convert_params and fields - {"dtype", "channels_as_one_layer"} <= raw_params
    assert "channels_as_one_layer" not in raw_params


def test_a_new_field_becomes_a_flag(monkeypatch):
    # what the tiff and volumes engineers do: one field with its option, and the flag exists
    from typing import Annotated, Optional

    @dataclasses.dataclass(frozen=True)
    class Extended(ConvertOptions):
        timepoint: Optional[int] = dataclasses.field(
            default=None, metadata=cli._flag(Annotated[Optional[int], typer.Option("--timepoint")])
        )

    monkeypatch.setattr(cli, "ConvertOptions", Extended)
    seen = []

    @cli.conversion_options()
    def command(*, options):
        seen.append(options)

    app = typer.Typer()
    app.command()(command)
    typer.main.get_command(app).main(["--voxel-size", "1,1,2", "--timepoint", "3", "--compression", "lz4"],
                                     standalone_mode=False)
    (got,) = seen
    assert isinstance(got, Extended) and got.timepoint == 3 and got.voxel_size == (1.0, 1.0, 2.0)
    assert got.compression == "lz4" and got.as_kwargs()["timepoint"] == 3
