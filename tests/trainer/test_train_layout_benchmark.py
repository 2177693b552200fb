"""``benchmarks.train_layout`` times a config's train step in each memory layout / compile
variant and prints a row per variant with its ratio to eager."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from benchmarks import train_layout


def test_each_variant_trains_and_gets_a_row_with_its_ratio_to_eager(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(
        "recipe: pix2pix\nimage_size: 64\nbatch_size: 2\n"
        "options:\n  ngf: 8\n  ndf: 8\n  num_D: 2\n  lambda_fm: 10\n"
    )
    args = ["--config", str(config), "--variants", "eager,channels_last",
            "--steps", "1", "--repeats", "2", "--warmup", "1"]  # fmt: skip
    assert train_layout.main(args) == 0
    out = capsys.readouterr().out
    rows = re.findall(r"^\| ([a-z_+]+) \| (\d+\.\d\d) \| (\d+\.\d\d) \|", out, re.M)
    rates = {variant: (float(rate), float(vs_eager)) for variant, rate, vs_eager in rows}
    assert set(rates) == {"eager", "channels_last"}, out
    assert rates["eager"][1] == 1.0, out
    assert all(rate > 0 for rate, _ in rates.values()), out
    # the ratio column is each variant's images/s over eager's
    expected = rates["channels_last"][0] / rates["eager"][0]
    assert rates["channels_last"][1] == pytest.approx(expected, abs=0.01), out
    assert "batch 2" in out


def test_an_unknown_variant_is_refused_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        train_layout.main(["--variants", "eager,fast"])
    assert exit_info.value.code == 2
    assert "unknown variants ['fast']" in capsys.readouterr().err
