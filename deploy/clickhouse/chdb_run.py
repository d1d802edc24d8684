"""Run ClickHouse SQL in chDB (the ClickHouse engine in process) for tests.

Reads one JSON request per line on stdin and writes one JSON answer per line
on stdout, against one chDB session whose data lives in the directory given
as the only argument (a fresh temporary one when absent):

  {"op": "exec",  "sql": "CREATE TABLE ..."}                   -> {"ok": true}
  {"op": "query", "sql": "SELECT ... {step:String}", "params": {"step": "x"}}
                                                               -> {"ok": true, "meta": [...], "data": [[...], ...]}
  {"op": "insert", "table": "traces", "rows": "<JSONEachRow text>"}
                                                               -> {"ok": true}

Errors answer {"ok": false, "error": "<ClickHouse's message>"}. Parameters
are passed to chDB as ClickHouse query parameters ({name:Type}
placeholders): the SQL text is never rewritten. The Go tests in
sinks/clickhouse drive it; deploy/clickhouse/chdb.sh installs chDB.
"""
import json
import sys
import tempfile

try:
    from chdb import session
except ImportError as e:  # pragma: no cover - reported to the Go test
    sys.stdout.write(json.dumps({"ok": False, "error": "chdb is not installed: %s; run bash deploy/clickhouse/chdb.sh" % e}) + "\n")
    sys.stdout.flush()
    sys.exit(2)


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="chdb-")
    s = session.Session(path)
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            op = req.get("op")
            if op == "exec":
                s.query(req["sql"], "CSV")
                out = {"ok": True}
            elif op == "query":
                res = s.query(req["sql"], "JSONCompact", params=req.get("params") or {})
                text = res.bytes().decode() if hasattr(res, "bytes") else str(res)
                doc = json.loads(text) if text.strip() else {"meta": [], "data": []}
                out = {"ok": True, "meta": doc.get("meta", []), "data": doc.get("data", [])}
            elif op == "insert":
                s.query("INSERT INTO %s FORMAT JSONEachRow\n%s" % (req["table"], req["rows"]), "CSV")
                out = {"ok": True}
            else:
                out = {"ok": False, "error": "unknown op %r" % op}
        except Exception as e:  # noqa: BLE001 - every failure goes back to the caller
            out = {"ok": False, "error": str(e)}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()
    s.close()


if __name__ == "__main__":
    main()
