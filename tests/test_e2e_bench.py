"""The e2e bench suite: stage arithmetic on made-up trace lines, and a short real run
(s2c-server + 4 s2c apps in ptys) that must produce every figure with sane values."""

import shutil

import pytest

from s2c.bench import stages as S


def _sent(pid, cap):
    return {"ev": "sent", "id": pid, "capture_us": cap, "enc_start_us": cap + 400, "enc_end_us": cap + 1100,
            "protect_end_us": cap + 1200, "send_end_us": cap + 1250, "bytes": 900}


def _drawn(rx, peer, cap, off=0):
    return {"ev": "drawn", "id": rx, "peer": peer, "seq": 1, "capture_us": cap + off, "capture_sender_us": cap,
            "recv_us": cap + 1800, "open_us": cap + 1900, "decode_us": cap + 2300, "render_start_us": cap + 9000,
            "render_end_us": cap + 9200, "bytes": 5000, "written_us": cap + 9700, "write_bytes": 7000}


def test_join_and_stages_add_up():
    recs = [_sent(1, 1_000_000), _sent(1, 1_050_000), _drawn(2, 1, 1_000_000, off=300),
            _drawn(3, 1, 1_050_000), _drawn(2, 1, 2_000_000),  # no sender line: not joined
            {"ev": "drawn", "id": 2, "peer": 1, "capture_sender_us": 1_000_000}]  # never written
    joined = S.join(recs)
    assert len(joined) == 2
    st = S.stage_ms(joined)
    total = sum(st[name][0] for name, _, _ in S.STAGES)
    assert total == pytest.approx(st["glass_to_glass"][0]) == pytest.approx(9.7)
    assert st["wait_for_draw"][0] == pytest.approx(6.7)
    assert st["glass_to_glass_offset"][0] == pytest.approx(9.4)
    assert S.join(recs, t_from_us=1_050_000) == [joined[1]]


@pytest.mark.skipif(shutil.which("s2c-server") is None or shutil.which("s2c") is None,
                    reason="console scripts not installed")
def test_quick_run_produces_every_figure(monkeypatch):
    from s2c.bench import suite_e2e
    monkeypatch.setenv("S2C_E2E_SECONDS", "3")
    monkeypatch.setattr(suite_e2e, "WARMUP_S", 3.0)
    m = suite_e2e.run(True)
    g = m["e2e.glass_to_glass_ms"]
    assert 0 < g.median < 200 and g.p99 >= g.median
    assert g.extra["frames_drawn"] > 50 and g.extra["drawn_share"] > 0.5
    for name, _, _ in S.STAGES:
        assert m[f"e2e.stage.{name}_ms"].median >= 0
    assert 0 < m["e2e.terminal_bytes_per_s"].median < m["e2e.terminal_bytes_per_s_full_redraw"].median
    assert 0 < m["e2e.client_cpu_pct"].median < 100
    assert m["e2e.client_rss_mb"].median > 10
    q = m["e2e.relay_queued_bytes"]
    assert q.median >= 0 and q.extra["relay_rss_mb_end"] > 10


@pytest.mark.skipif(shutil.which("s2c-server") is None, reason="console scripts not installed")
def test_crypto_call_cpu_ab_run_produces_paired_figures(monkeypatch):
    from s2c.bench import suite_crypto, suite_e2e
    monkeypatch.setenv("S2C_CRYPTO_CALL_SECONDS", "3")
    monkeypatch.setattr(suite_e2e, "WARMUP_S", 3.0)
    m = suite_crypto._call_cpu(True)
    r = m["crypto.call_cpu_ratio"]
    assert r.extra["pairs"] >= 2 and 0.3 < r.median < 3      # a real ratio of two CPU figures
    assert 0 < m["crypto.call_cpu_pct"].median < 100 and 0 < m["crypto.call_cpu_pct_plain"].median < 100
    assert min(r.extra["terminal_bytes_per_s_per_app"]) > 10_000   # the apps drew pictures


def test_plot_draws_a_png_of_every_stage(tmp_path):
    pytest.importorskip("matplotlib")
    from s2c.bench import suite_e2e
    st = {name: [0.1 * (i + 1) for i in range(50)] for name, _, _ in S.STAGES}
    st["glass_to_glass"] = [3.0 + 0.1 * i for i in range(50)]
    path = tmp_path / "stages.png"
    suite_e2e._plot(st, str(path))
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
