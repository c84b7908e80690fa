"""Running the app under uvicorn with a graceful shutdown (`bff serve`).

SIGTERM (what Kubernetes and `docker stop` send to the main process):
1. /readyz answers 503 at once (`Lifecycle.drain`), so load balancers take the instance
   out of rotation, while new connections are still accepted and served;
2. after BFF_SHUTDOWN_DRAIN_DELAY seconds the listening socket closes (new connections
   are refused) and idle keep-alive connections are closed;
3. requests in flight, streamed responses included, get BFF_SHUTDOWN_TIMEOUT seconds to
   finish (uvicorn's `timeout_graceful_shutdown`), then are cancelled;
4. the lifespan ends (pools closed, spans flushed) and the process exits 0.
SIGINT (Ctrl-C) skips the delay; a second SIGINT stops at once.

With one worker, the server is `DrainingServer` in this process. With several, uvicorn's
supervisor (`Multiprocess`) runs plain uvicorn workers and forwards signals to them;
`DrainingSupervisor` turns SIGTERM into SIGUSR1 for every worker (each worker marks itself
draining, see `install_drain_signal`), waits the drain delay, then sends SIGTERM as
uvicorn does and closes its own copy of the listening socket, so that the port refuses
connections as soon as the workers have closed theirs. Send SIGTERM to the main process
only (systemd: KillMode=mixed), as a container runtime does.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from types import FrameType

import uvicorn
from prometheus_client import multiprocess
from uvicorn.supervisors.multiprocess import Multiprocess

from bff.web.lifecycle import Lifecycle

__all__ = [
    "PROCESS_LIFECYCLE",
    "DrainingServer",
    "DrainingSupervisor",
    "install_drain_signal",
    "run",
]

_log = logging.getLogger("bff.serve")
STARTUP_FAILURE = 3  # uvicorn's exit status when the app could not start

# One per process: the server (or the drain signal) flips it, /readyz reads it.
PROCESS_LIFECYCLE = Lifecycle()
DRAIN_SIGNAL = signal.SIGUSR1


def install_drain_signal(lifecycle: Lifecycle = PROCESS_LIFECYCLE) -> None:
    """In a worker process: SIGUSR1 from the supervisor starts draining."""
    signal.signal(DRAIN_SIGNAL, lambda sig, frame: lifecycle.drain())


class DrainingServer(uvicorn.Server):
    """uvicorn's server with a drain delay on SIGTERM, and exit status 0 after a signal
    (uvicorn would re-raise the signal once shut down: death by SIGTERM, status 143)."""

    def __init__(
        self,
        config: uvicorn.Config,
        *,
        drain_delay: float,
        lifecycle: Lifecycle = PROCESS_LIFECYCLE,
    ) -> None:
        super().__init__(config)
        self.drain_delay = drain_delay
        self.lifecycle = lifecycle
        self._exit_at: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.lifecycle.drain()
        if sig == signal.SIGTERM and self._exit_at is None and not self.should_exit:
            _log.info("SIGTERM: draining for %.1f s, then shutting down", self.drain_delay)
            self._exit_at = time.monotonic() + self.drain_delay
        elif self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self.should_exit = True

    async def on_tick(self, counter: int) -> bool:
        if self._exit_at is not None and time.monotonic() >= self._exit_at:
            self.should_exit = True
        return await super().on_tick(counter)


class DrainingSupervisor(Multiprocess):
    """uvicorn's worker supervisor, with the drain delay on SIGTERM (see the module)."""

    def __init__(
        self,
        config: uvicorn.Config,
        sockets: list,  # type: ignore[type-arg]
        *,
        drain_delay: float,
        metrics_dir: str | None = None,
    ) -> None:
        super().__init__(config, sockets=sockets)
        self.drain_delay = drain_delay
        self.metrics_dir = metrics_dir
        self._stop_at: float | None = None

    def handle_term(self) -> None:
        if self._stop_at is not None:
            return
        _log.info("SIGTERM: draining for %.1f s, then shutting down", self.drain_delay)
        PROCESS_LIFECYCLE.drain()  # the admin listener's /readyz (it runs in this process)
        for process in self.processes:
            if process.pid is not None and process.exitcode is None:
                os.kill(process.pid, DRAIN_SIGNAL)
        self._stop_at = time.monotonic() + self.drain_delay

    def keep_subprocess_alive(self) -> None:
        if self._stop_at is not None and time.monotonic() >= self._stop_at:
            self.should_exit.set()
            return
        before = {process.pid for process in self.processes}
        super().keep_subprocess_alive()
        if self.metrics_dir:
            # A replaced worker's in-flight and stream gauges stop counting (livesum).
            for pid in before - {process.pid for process in self.processes}:
                if pid is not None:
                    multiprocess.mark_process_dead(pid, self.metrics_dir)  # type: ignore[no-untyped-call]

    def terminate_all(self) -> None:
        super().terminate_all()
        for sock in self.sockets:
            sock.close()  # the workers hold their own copies until they stop accepting


def run(config: uvicorn.Config, *, drain_delay: float, metrics_dir: str | None = None) -> int:
    """Serve until a signal ends it; the process's exit status."""
    if (config.workers or 1) > 1:
        sock = config.bind_socket()
        DrainingSupervisor(config, [sock], drain_delay=drain_delay, metrics_dir=metrics_dir).run()
        return 0
    # As uvicorn.run: the app module imported before the event loop starts. Importing it
    # inside the loop cost the refresh storm of `make bench` 10-20% at p99 (measured
    # A/B; cause not pinned down).
    config.load_app()
    server = DrainingServer(config, drain_delay=drain_delay)
    server.run()
    return 0 if server.started else STARTUP_FAILURE
