"""Giving back the trials of workers that went silent or died: re-queued while retries last,
then failed with the reason; a claim lost with its worker's node is no retry. See
:class:`db.store.Store` for the rules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select, update

from db.connections import StoreBase, translate_db_errors, utcnow
from db.errors import StudyNotFoundError
from db.models import Study, Trial, TrialState
from db.records import Recovery

#: What deciding a lost trial's fate reads of it.
_LOST_COLUMNS = (Trial.id, Trial.number, Trial.worker_id, Trial.attempts, Trial.node_losses)


class Recoveries(StoreBase):
    """Recovery of lost running trials, by heartbeat timeout or by a worker known dead."""

    @translate_db_errors
    def recover_stale(self, study_id: int, *, now: datetime | None = None) -> Recovery:
        """Re-queue running trials whose worker stopped beating; fail those out of retries.

        A trial is stale when its last heartbeat is older than the study's heartbeat timeout.
        It goes back to the queue (keeping its number, so it is claimed next) until it has been
        tried ``1 + max_retries`` times (claims lost with their node not counted), then it is
        marked failed with the reason. A silent worker's loss always counts: why it went quiet
        is unknown. Safe to run from any number of processes at once: each row is moved by one
        of them only.
        """
        now = now or utcnow()
        with self._write() as conn:
            timeout, max_retries = _retry_policy(conn, study_id)
            cutoff = now - timedelta(seconds=timeout)
            stale = conn.execute(
                select(*_LOST_COLUMNS, Trial.heartbeat_at).where(
                    Trial.study_id == study_id,
                    Trial.state == TrialState.RUNNING.value,
                    Trial.heartbeat_at < cutoff,
                )
            ).all()
            reasons = {
                row.id: f"attempt {row.attempts} lost: worker {row.worker_id!r} sent no heartbeat for "
                f"{(now - row.heartbeat_at).total_seconds():.0f}s (timeout {timeout:g}s)"
                for row in stale
            }
            return _requeue_or_fail(
                conn, stale, reasons, max_retries, now, Trial.heartbeat_at < cutoff, retry=True, counted=True
            )

    @translate_db_errors
    def release_worker(
        self, study_id: int, worker_id: str, reason: str, *, retry: bool = True, counted: bool = True
    ) -> Recovery:
        """Give back the running trials of a worker known to be dead, without waiting for
        its heartbeat to time out: re-queued while retries last (``retry``), else failed.

        ``retry=False`` fails them at once: for a death that would recur (the worker ran out
        of memory on that configuration). ``counted=False`` is for a worker lost with its node
        (spot preemption, a node removed): the trial did nothing wrong, so the claim is added
        to its ``node_losses`` and re-queues it whatever its retries; ``attempts`` still counts
        every claim. Nothing here bounds such losses: the caller does (the sweep driver stops
        after a few deaths per worker, :mod:`workers.sweep`). A trial the worker finished
        meanwhile is untouched.
        """
        now = utcnow()
        with self._write() as conn:
            _, max_retries = _retry_policy(conn, study_id)
            held = conn.execute(
                select(*_LOST_COLUMNS).where(
                    Trial.study_id == study_id,
                    Trial.state == TrialState.RUNNING.value,
                    Trial.worker_id == worker_id,
                )
            ).all()
            reasons = {row.id: f"attempt {row.attempts} lost: {reason}" for row in held}
            return _requeue_or_fail(
                conn, held, reasons, max_retries, now, Trial.worker_id == worker_id, retry=retry, counted=counted
            )


def _retry_policy(conn: Connection, study_id: int) -> tuple[float, int]:
    row = conn.execute(
        select(Study.heartbeat_timeout, Study.max_retries).where(Study.id == study_id)
    ).one_or_none()
    if row is None:
        raise StudyNotFoundError(f"unknown study id {study_id}")
    return float(row.heartbeat_timeout), int(row.max_retries)


def _requeue_or_fail(
    conn: Connection,
    rows: Sequence[Any],
    reasons: Mapping[int, str],
    max_retries: int,
    now: datetime,
    still: Any,
    *,
    retry: bool,
    counted: bool,
) -> Recovery:
    """Move each lost running trial back to the queue, or to failed when it is out of
    retries (or ``retry`` is off); ``still`` is the condition that must hold for the row
    to move, so a trial another process already moved or finished is left alone.

    A trial is out of retries when its counted claims, ``attempts - node_losses``, exceed
    ``max_retries``; a loss that is not ``counted`` adds to ``node_losses`` instead, so it
    never spends one."""
    requeued: list[int] = []
    failed: list[int] = []
    for row in rows:
        lost = reasons[row.id]
        node_losses = row.node_losses + (0 if counted else 1)
        give_up = not retry or (counted and row.attempts - node_losses > max_retries)
        uncounted = f", {node_losses} lost with their node and not counted" if node_losses else ""
        values: dict[str, Any] = (
            {
                "state": TrialState.FAILED.value,
                "finished_at": now,
                "node_losses": node_losses,
                "error": f"{lost}; failed after {row.attempts} attempts"
                + (f" (max_retries={max_retries}{uncounted})" if retry else f" (not retried{uncounted})"),
            }
            if give_up
            else {
                "state": TrialState.QUEUED.value,
                "worker_id": None,
                "heartbeat_at": None,
                "node_losses": node_losses,
                "error": f"{lost}; re-queued"
                + ("" if counted else " (its node was lost: not counted against max_retries)"),
            }
        )
        moved = conn.execute(
            update(Trial)
            .where(Trial.id == row.id, Trial.state == TrialState.RUNNING.value, still)
            .values(**values)
        ).rowcount
        if moved == 1:
            (failed if give_up else requeued).append(row.number)
    return Recovery(tuple(requeued), tuple(failed))
