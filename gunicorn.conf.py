"""Production WSGI server settings: `gunicorn -c gunicorn.conf.py wsgi:app`.

Threads suit this app: a request spends much of its time waiting on PostgreSQL. gunicorn's access log
is off: the app writes its own access line (JSON, with the route's rule instead of the raw path and
query string, which may carry personal data), and gunicorn's own lines use the same JSON formatter.
Prometheus samples from every worker go to PROMETHEUS_MULTIPROC_DIR (one is made if unset).
"""
import logging
import os
import re
import shutil
import tempfile

from gunicorn.glogging import Logger

from voucher.ops.logs import gunicorn_logconfig

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# One process per core and a few threads each: measured here (benchmarks/), more processes than
# cores, or more threads, only added GIL contention and tail latency; four threads cover the waits
# on PostgreSQL. Behind nginx, run one instance of one worker per core, each on its own port
# (GUNICORN_BIND, WEB_CONCURRENCY=1; docs/operations.md): nginx then balances the processes itself.
workers = int(os.environ.get("WEB_CONCURRENCY", str(os.cpu_count() or 2)))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = 30
graceful_timeout = 30
keepalive = 5
accesslog = None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "warning")
logconfig_dict = gunicorn_logconfig(os.environ.get("LOG_FORMAT", "json"), loglevel)


class QuietAccessLogger(Logger):
    """gunicorn's logger, minus the work for an access line nobody writes: given a log configuration,
    gunicorn builds every request's log atoms even though gunicorn.access is switched off (about 2% of
    a worker's CPU on the redemption API)."""

    def access(self, resp, req, environ, request_time):
        if self.access_log.isEnabledFor(logging.INFO):
            super().access(resp, req, environ, request_time)


logger_class = QuietAccessLogger

# Behind a reverse proxy on the same host: trust its X-Forwarded-* headers only.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# Prometheus multi-process mode: set before any worker imports prometheus_client. A directory of our
# own (made here, emptied at start, removed at exit) unless the operator names one.
_made_metrics_dir = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _made_metrics_dir:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="voucher-metrics-")


def on_starting(server):
    # Samples left by an earlier run would be added to this one's. Only prometheus_client's own files
    # go (counter_<pid>.db, gauge_livesum_<pid>.db...): the variable might name a directory with more.
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if re.fullmatch(r"(counter|histogram|summary|gauge_[a-z]+)_\d+\.db", name):
            os.remove(os.path.join(directory, name))


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _made_metrics_dir:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
