"""Where the TUI writes exports and screenshots, and what it says of each
recording at exit (``tui/saved_files.py``), as pure functions; the trials'
sequencing (``tui/trial_series.py``) likewise. The app's use of both is
driven through Pilot in test_tui_race, test_tui_trials and
test_recording_failure."""

from __future__ import annotations

from pathlib import Path

from thunderdome.sources.base import RecordingStatus
from thunderdome.tui.saved_files import complete_recording, export_stem, output_folder, recording_report
from thunderdome.tui.trial_series import TrialSeries


def test_files_go_to_the_configured_folder_else_beside_a_complete_recording_else_cwd(tmp_path: Path) -> None:
    recording = str(tmp_path / "rec" / "race-1.jsonl")
    assert output_folder(str(tmp_path / "out"), recording) == tmp_path / "out"
    assert output_folder(None, recording) == tmp_path / "rec"
    assert output_folder(None, None) == Path.cwd()
    failed = RecordingStatus(path="/dev/full", error="No space left on device", events=0)
    assert complete_recording(failed) is None and complete_recording(None) is None
    assert output_folder(None, complete_recording(failed)) == Path.cwd()
    assert complete_recording(RecordingStatus(path=recording)) == recording


def test_an_export_is_named_after_its_recording_or_its_task() -> None:
    assert export_stem("/tmp/rec/race-7.jsonl", "sigkill") == "race-7"
    stem = export_stem(None, "sigkill")
    assert stem.startswith("thunderdome-sigkill-") and stem[len("thunderdome-sigkill-"):].replace("-", "").isdigit()
    assert export_stem(None, None).startswith("thunderdome-race-")


def test_the_closing_word_names_each_recording_and_fails_on_an_incomplete_one(tmp_path: Path) -> None:
    kept = tmp_path / "race-1.jsonl"
    kept.write_text("{}\n", encoding="utf-8")
    gone = RecordingStatus(path=str(tmp_path / "never-written.jsonl"))
    lines, failed = recording_report([None, RecordingStatus(path=str(kept)), gone])
    assert not failed
    assert lines == [f"thunderdome: recorded {kept}  (replay: thunderdome replay {kept})"]
    full = RecordingStatus(path="/dev/full", error="No space left on device", events=3, last_t=1.25)
    lines, failed = recording_report([full])
    assert failed and lines == ["thunderdome: recording incomplete (stops at t=1.25 s after 3 events): No space left on device"]


def test_trials_are_seeded_by_their_index_and_summarised_after_the_last() -> None:
    seen: list[int | None] = []

    def factory(task, specs, seed_offset=None):
        seen.append(seed_offset)
        return object()

    series = TrialSeries(total=2)
    assert series.label() == "1/2"
    series.source(factory, None, [])  # type: ignore[arg-type]
    assert not series.finished({"lanes": [], "winner": None})
    assert series.label() == "2/2" and series.summary is None
    series.source(factory, None, [])  # type: ignore[arg-type]
    assert series.finished({"lanes": [], "winner": None})
    assert seen == [0, 1] and series.summary is not None
    assert series.export() == {"races": series.results, "summary": series.summary}
    series.restart()
    assert series.label() == "1/2" and series.summary is None
    single = TrialSeries(total=1)
    single.source(factory, None, [])  # type: ignore[arg-type]
    assert seen[-1] is None and single.label() == ""
