from conftest import FakeJobqd, exec_, command

async def test_smoke(jobqd: FakeJobqd, start_node) -> None:
    node = await start_node("--labels", "zone=a,gpu=yes")
    s = await jobqd.session()
    print(s.hello)
    s.welcome(heartbeat_ms=200)
    s.assign("t1", exec_("sh", "-c", "echo hello; echo err >&2; echo PROGRESS: 50; exit 0"))
    s.assign("t2", command("noop"))
    s.assign("t3", exec_("false"))
    for t in ("t1", "t2", "t3"):
        print(t, await s.final(t), s.kinds(t), s.log_lines(t))
    print(len(s.heartbeats()))
    rc = await node.stop()
    print(rc)
    print(node.log_path.read_text()[-3000:])
