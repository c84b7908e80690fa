"""`bff serve`'s preparation of the metrics folder."""

from __future__ import annotations


def test_serve_starts_with_an_empty_metrics_folder(tmp_path) -> None:
    # A restarted container keeps its tmp volume: a dead process's counter and gauge
    # files would be summed into /metrics for ever.
    from bff.cli.serve_command import fresh_metrics_dir

    folder = tmp_path / "metrics"
    fresh_metrics_dir(str(folder))  # created when missing (read-only root, tmp volume)
    (folder / "counter_123.db").write_bytes(b"x")
    (folder / "gauge_livesum_123.db").write_bytes(b"x")
    (folder / "keep.txt").write_text("not prometheus_client's")
    fresh_metrics_dir(str(folder))
    assert sorted(p.name for p in folder.iterdir()) == ["keep.txt"]
