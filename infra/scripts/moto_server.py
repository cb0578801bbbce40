"""moto_server, with requests applied one at a time.

moto's TransactWriteItems is atomic only within one thread: it snapshots the tables, applies the
items, and on a failed condition restores the snapshot, which also erases whatever another
request wrote meanwhile. Real DynamoDB never does that. Serializing requests gives the emulator
DynamoDB's guarantee (transactions are isolated), so concurrency tests prove our code, not
moto's races.

And DynamoDB's items are not kept forever. moto records every instance of its models for its
data view (`/moto-api/data.json`), and its TransactWriteItems deep-copies each table it touches
(the snapshot above): every item and stream record of the table, copied and recorded at every
transaction, never freed. A benchmark of a few thousand submissions grew the emulator past 8 GB
and slowed each transaction past the SDK's timeouts. DynamoDB's models are left out of that
record (nothing here reads them from the data view: the tests read SES's emails there).

Usage is exactly moto_server's: python infra/scripts/moto_server.py -H HOST -p PORT
"""

import threading

import moto.server as server
from moto.core.common_models import BaseModel

_tracked_new = BaseModel.__new__


def _new(cls, *args, **kwargs):
    if cls.__module__.startswith("moto.dynamodb"):
        return object.__new__(cls)
    return _tracked_new(cls, *args, **kwargs)


BaseModel.__new__ = staticmethod(_new)

_lock = threading.Lock()
_call = server.DomainDispatcherApplication.__call__


def _serialized(self, environ, start_response):
    with _lock:
        # moto builds whole responses, so the lock covers all of the request's work.
        return list(_call(self, environ, start_response))


server.DomainDispatcherApplication.__call__ = _serialized

if __name__ == "__main__":
    server.main()
