"""Repeat detection for right-track misses, on a looping track the test writes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from datasets.corpora.folder import FolderCorpus
from datasets.protocol import Protocol
from datasets.queries.repeats import best_normalised_correlation, repeat_similarity, repeat_table


def test_a_scaled_shifted_copy_correlates_fully_and_other_audio_does_not() -> None:
    rng = np.random.default_rng(0)
    template = rng.standard_normal(800)
    region = rng.standard_normal(1400)
    region[317:1117] = 0.3 * template + 0.05
    assert best_normalised_correlation(template, region) == pytest.approx(1.0, abs=1e-9)
    assert best_normalised_correlation(template, rng.standard_normal(1400)) < 0.2
    assert np.isnan(best_normalised_correlation(template, region[:799]))
    assert np.isnan(best_normalised_correlation(np.ones(800), region))


def test_a_miss_on_the_tracks_loop_is_a_repeat_and_one_elsewhere_is_not(tmp_path: Path) -> None:
    p = Protocol()
    sr, hop = p.sample_rate, p.hop_samples
    rng = np.random.default_rng(1)
    loop, bridge = rng.standard_normal(4 * sr), rng.standard_normal(4 * sr)
    sf.write(tmp_path / "looping.wav", 0.2 * np.concatenate([loop, bridge, loop]), sr, subtype="FLOAT")
    corpus = FolderCorpus(tmp_path, p)
    start = int(1.1 * sr)
    n = 2 * sr

    def row(pred_segment: int, track: bool = True, near: bool = False) -> dict:
        return {"track_id": "looping.wav", "start_sample": start, "n_samples": n, "duration_s": 2.0,
                "pred_segment": pred_segment, "exact": False, "near": near, "track": track}

    on_loop = (start + 8 * sr) // hop          # the same audio, one loop later
    outcomes = pd.DataFrame([row(on_loop), row((start + 4 * sr) // hop), row(start // hop + 1, near=True),
                             row(on_loop, track=False)])
    similarity = repeat_similarity(corpus, outcomes, max_lag_s=0.5)
    assert similarity[0] > 0.99
    assert similarity[1] < 0.2
    assert similarity[2:].isna().all()
    table = repeat_table(outcomes, similarity)
    assert table.loc["all", "right track, wrong place %"] == 50.0
    assert table.loc["all", "... a repeat (corr >= 0.9) %"] == 25.0
    with pytest.raises(ValueError, match="pred_segment"):
        repeat_similarity(corpus, outcomes.drop(columns="pred_segment"))


@pytest.mark.slow
def test_eval_encoder_tabulates_repeats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bench.cli.main import main

    assert main(["eval-encoder", "--corpus", "synth", "--synth-tracks", "4", "--durations", "1", "2",
                 "--snr", "0", "--reverb", "none", "--per-cell", "5", "--repeats", "--no-progress",
                 "--out", str(tmp_path / "qs")]) == 0
    out = capsys.readouterr().out
    table = out.split("right-track misses at a place repeating")[1]
    rows = {line.split()[0]: line.split() for line in table.splitlines()[1:] if line.strip()}
    assert rows["all"][1] == "10" and rows["1"][1] == "5" and rows["2"][1] == "5"
    wrong_place, repeats_90, repeats_80 = (float(v) for v in rows["all"][4:7])
    assert 0.0 <= repeats_90 <= repeats_80 <= wrong_place <= 100.0
    with pytest.raises(SystemExit, match="--max-lag-s"):
        main(["eval-encoder", "--corpus", "synth", "--repeats", "--max-lag-s", "-1"])
