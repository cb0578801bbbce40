"""moto_server, with requests applied one at a time.

moto's TransactWriteItems is atomic only within one thread: it snapshots the tables, applies the
items, and on a failed condition restores the snapshot, which also erases whatever another
request wrote meanwhile. Real DynamoDB never does that. Serializing requests gives the emulator
DynamoDB's guarantee (transactions are isolated), so concurrency tests prove our code, not
moto's races. Usage is exactly moto_server's: python infra/scripts/moto_server.py -H HOST -p PORT
"""

import threading

import moto.server as server

_lock = threading.Lock()
_call = server.DomainDispatcherApplication.__call__


def _serialized(self, environ, start_response):
    with _lock:
        # moto builds whole responses, so the lock covers all of the request's work.
        return list(_call(self, environ, start_response))


server.DomainDispatcherApplication.__call__ = _serialized

if __name__ == "__main__":
    server.main()
