"""The progress bar: plain lines when the stream is not a terminal, counts and units right."""

import io

from train_app.progress import ProgressBar, format_count, format_duration


def test_counts_and_durations_read_naturally():
    assert format_count(999, "B") == "999B"
    assert format_count(1_500_000, "B") == "1.5MB"
    assert format_count(2_200_000_000, "B") == "2.2GB"
    assert format_count(12345, "") == "12,345"
    assert format_duration(75) == "1:15" and format_duration(3725) == "1:02:05"


def test_plain_stream_gets_a_final_line_with_the_total():
    stream = io.StringIO()
    bar = ProgressBar(2_000_000, desc="data.txt", unit="B", stream=stream)
    bar.update(500_000)  # a resumed transfer starts part-way: the rate counts only new bytes
    bar.update(1_500_000)
    bar.close()
    text = stream.getvalue()
    assert "\r" not in text and text.endswith("\n")  # no redraws outside a terminal
    assert "data.txt" in text and "100% |" in text and "2.0MB/2.0MB" in text


def test_disabled_bar_writes_nothing():
    stream = io.StringIO()
    bar = ProgressBar(10, stream=stream, enabled=False)
    bar.update(10)
    bar.close()
    assert stream.getvalue() == ""
