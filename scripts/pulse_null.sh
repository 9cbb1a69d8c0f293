#!/usr/bin/env bash
# A private PulseAudio daemon with one null sink, for headless audio tests and CI.
#
#   eval "$(scripts/pulse_null.sh start [DIR])"   start (if not running) and export the env
#   scripts/pulse_null.sh env [DIR]                 print the env lines only
#   scripts/pulse_null.sh stop [DIR]                stop what start started (by pid)
#
# DIR defaults to $S2C_PULSE_DIR or /tmp/s2c-pulse-$(id -u). The daemon listens only on
# DIR/pulse/native (anonymous auth inside a 0700 directory) and keeps its state in DIR.
# PortAudio's ALSA 'default'/'pulse' devices then play into the sink "s2c_null" and record
# its monitor (what was played). A silent keep-alive stream keeps the sink running: without
# it every new stream stalls 1.2-1.5 s before its first buffer moves; start also plays a
# short warm-up so that the first client stream does not meet the daemon's own start stall.
# Needs: pulseaudio pulseaudio-utils (pactl, pacat) libasound2-plugins. Works as root.
set -euo pipefail
cmd="${1:-start}"
RT="${2:-${S2C_PULSE_DIR:-/tmp/s2c-pulse-$(id -u)}}"
SINK=s2c_null

print_env() {
  echo "export XDG_RUNTIME_DIR='$RT'"
  echo "export PULSE_SERVER='unix:$RT/pulse/native'"
  echo "export PULSE_SINK=$SINK"
  echo "export PULSE_SOURCE=$SINK.monitor"
}

daemon_env() { env XDG_RUNTIME_DIR="$RT" HOME="$RT" PULSE_SERVER="unix:$RT/pulse/native" "$@"; }

case "$cmd" in
  env) print_env ;;
  start)
    command -v pulseaudio >/dev/null || { echo "pulse_null.sh: pulseaudio is not installed" >&2; exit 2; }
    mkdir -p "$RT"; chmod 700 "$RT"
    if ! daemon_env pactl info >/dev/null 2>&1; then
      daemon_env pulseaudio --daemonize=yes --system=no --exit-idle-time=-1 --realtime=no \
        --high-priority=no --use-pid-file=yes -n \
        --load="module-native-protocol-unix auth-anonymous=1 socket=$RT/pulse/native" \
        --load="module-null-sink sink_name=$SINK rate=48000 channels=1" \
        --log-target=file:"$RT/pulse.log" >/dev/null 2>&1 || true
      for _ in $(seq 1 100); do daemon_env pactl info >/dev/null 2>&1 && break; sleep 0.05; done
      daemon_env pactl info >/dev/null 2>&1 || { echo "pulse_null.sh: pulseaudio did not come up; see $RT/pulse.log" >&2; exit 1; }
      daemon_env pactl set-default-sink "$SINK"
      daemon_env pactl set-default-source "$SINK.monitor"
      daemon_env setsid pacat --playback --raw --format=s16le --channels=1 --rate=48000 \
        --latency-msec=20 -d "$SINK" --client-name=s2c-keepalive </dev/zero >/dev/null 2>&1 &
      echo $! > "$RT/keepalive.pid"
      # The first stream after the daemon starts stalls ~1.6 s before it moves; absorb that
      # here (play 0.1 s of silence to completion) so clients start at once.
      head -c 9600 /dev/zero | daemon_env timeout 10 pacat --playback --raw --format=s16le --channels=1 \
        --rate=48000 -d "$SINK" --client-name=s2c-warmup >/dev/null 2>&1 || true
    fi
    print_env ;;
  stop)
    if [ -f "$RT/keepalive.pid" ]; then kill "$(cat "$RT/keepalive.pid")" 2>/dev/null || true; rm -f "$RT/keepalive.pid"; fi
    if [ -f "$RT/pulse/pid" ]; then kill "$(cat "$RT/pulse/pid")" 2>/dev/null || true; fi ;;
  *) echo "usage: $0 start|env|stop [DIR]" >&2; exit 2 ;;
esac
