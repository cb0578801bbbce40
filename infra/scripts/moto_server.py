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

Nor is a whole table copied for each transaction. With requests one at a time, what a failed
transaction must undo is its own items: they are copied before it runs (with each stream's
length) and put back if it fails, instead of moto's snapshot of every table it touches, whose
cost grew with the table (a login's one transaction took 14 ms of a 48 ms login).

Usage is exactly moto_server's: python infra/scripts/moto_server.py -H HOST -p PORT
"""

import copy
import threading

import moto.dynamodb.models as dynamodb_models
import moto.server as server
from moto.core.common_models import BaseModel
from moto.dynamodb.models.table import Table

_tracked_new = BaseModel.__new__


def _new(cls, *args, **kwargs):
    if cls.__module__.startswith("moto.dynamodb"):
        return object.__new__(cls)
    return _tracked_new(cls, *args, **kwargs)


BaseModel.__new__ = staticmethod(_new)


class _TablesNotCopied:
    """`copy` as moto's transaction sees it: a table is its own snapshot (the rollback that
    assigns it back changes nothing); anything else is copied as before."""

    def __getattr__(self, name):
        return getattr(copy, name)

    @staticmethod
    def deepcopy(x, memo=None):
        return x if isinstance(x, Table) else copy.deepcopy(x, memo)


def _touched(backend, transact_items):
    """(table, hash key, range key) of each item a transaction names."""
    out = []
    for entry in transact_items:
        for op in entry.values():
            table = backend.tables.get(op.get("TableName"))
            attrs = op.get("Key") or op.get("Item") or {}
            if table is None or table.hash_key_attr not in attrs:
                continue
            key = {table.hash_key_attr: attrs[table.hash_key_attr]}
            if table.range_key_attr is not None:
                if table.range_key_attr not in attrs:
                    continue
                key[table.range_key_attr] = attrs[table.range_key_attr]
            try:
                hash_key, range_key = backend.get_keys_value(table, key)
            except Exception:
                continue  # moto refuses the request itself, before it writes anything
            out.append((table, hash_key, range_key))
    return out


def _put_back(table, hash_key, range_key, item):
    if range_key is None:
        if item is None:
            table.items.pop(hash_key, None)
        else:
            table.items[hash_key] = item
    elif item is None:
        table.items.get(hash_key, {}).pop(range_key, None)
    else:
        table.items[hash_key][range_key] = item


_transact = dynamodb_models.DynamoDBBackend.transact_write_items


def _transact_undoing_own_items(self, transact_items):
    touched = _touched(self, transact_items)
    before = [(t, h, r, copy.deepcopy(t.get_item(h, r))) for t, h, r in touched]
    streams = {
        id(t): (t.stream_shard, len(t.stream_shard.items))
        for t, _, _ in touched
        if t.stream_shard is not None
    }
    dynamodb_models.copy = _TablesNotCopied()
    try:
        return _transact(self, transact_items)
    except Exception:
        for t, h, r, item in reversed(before):
            _put_back(t, h, r, item)
        for shard, length in streams.values():
            del shard.items[length:]
        raise
    finally:
        dynamodb_models.copy = copy


dynamodb_models.DynamoDBBackend.transact_write_items = _transact_undoing_own_items

_lock = threading.Lock()
_call = server.DomainDispatcherApplication.__call__


def _serialized(self, environ, start_response):
    with _lock:
        # moto builds whole responses, so the lock covers all of the request's work.
        return list(_call(self, environ, start_response))


server.DomainDispatcherApplication.__call__ = _serialized

if __name__ == "__main__":
    server.main()
