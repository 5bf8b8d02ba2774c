"""A real farm on loopback: jobqd plus several jobq-node processes running real commands."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from jobq.v1 import job_service_pb2 as js
from jobq.v1 import node_service_pb2 as ns
from jobq.v1 import types_pb2 as pb

from tests.support.commands import cmd, sh
from tests.support.procs import Jobqd, NodeProc, eventually

TERMINAL = (pb.JOB_STATUS_COMPLETED, pb.JOB_STATUS_FAILED, pb.JOB_STATUS_CANCELED)


def submit(d: Jobqd, spec: pb.JobSpec) -> pb.Job:
    return d.jobs.SubmitJob(js.SubmitJobRequest(spec=spec)).job


def get(d: Jobqd, job_id: str) -> pb.Job:
    return d.jobs.GetJob(js.GetJobRequest(job_id=job_id)).job


def wait_status(d: Jobqd, job_id: str, *statuses: int, timeout: float = 60) -> pb.Job:
    return eventually(
        lambda: (j := get(d, job_id)).status in statuses and j,
        timeout=timeout,
        what=f"job {job_id} in {statuses}",
    )


def online(d: Jobqd, n: int) -> None:
    eventually(
        lambda: (
            sum(x.state == pb.NODE_STATE_ONLINE for x in d.nodes.ListNodes(ns.ListNodesRequest()).nodes) >= n
        ),
        what=f"{n} nodes online",
    )


def log_lines(d: Jobqd, task_id: str) -> list[str]:
    return [
        line
        for r in d.jobs.TailTaskLog(js.TailTaskLogRequest(task_id=task_id, lines=1000), timeout=10)
        for line in r.lines
    ]


def test_array_of_50_exec_tasks_completes_with_each_output_in_its_log(
    jobqd: Jobqd, node_factory: Callable[..., NodeProc]
) -> None:
    node_factory(jobqd.address, "n1", slots=4)
    node_factory(jobqd.address, "n2", slots=4)
    online(jobqd, 2)
    job = submit(
        jobqd,
        pb.JobSpec(
            name="fifty",
            array=pb.ArraySpec(
                template=pb.TaskSpec(commands=[cmd("exec", argv=["echo", "task {index}"])]), start=0, end=49
            ),
        ),
    )
    done = wait_status(jobqd, job.id, *TERMINAL)
    assert done.status == pb.JOB_STATUS_COMPLETED and done.task_counts.completed == 50
    nodes_used = set()
    for t in jobqd.jobs.ListTasks(js.ListTasksRequest(job_id=job.id, page_size=100)).tasks:
        assert t.status == pb.TASK_STATUS_COMPLETED and t.attempt == 1 and t.exit_code == 0
        nodes_used.add(t.node)
        assert log_lines(jobqd, t.id) == [f"task {t.index}"]
    assert nodes_used == {"n1", "n2"}


def test_failing_task_soft_fails_across_distinct_nodes_then_fails_the_job(
    jobqd: Jobqd, node_factory: Callable[..., NodeProc]
) -> None:
    for name in ("n1", "n2", "n3"):
        node_factory(jobqd.address, name, slots=1)
    online(jobqd, 3)
    job = submit(
        jobqd,
        pb.JobSpec(
            name="bad",
            tasks=[pb.TaskSpec(name="boom", commands=[sh("echo failing; exit 1")])],
            failure_policy=pb.FailurePolicy(max_attempts=3, blocklist_threshold=10),
        ),
    )
    done = wait_status(jobqd, job.id, *TERMINAL)
    assert done.status == pb.JOB_STATUS_FAILED
    task = jobqd.jobs.GetTask(js.GetTaskRequest(task_id=f"{job.id}.0")).task
    assert task.status == pb.TASK_STATUS_FAILED
    assert sorted(task.failed_by) == ["n1", "n2", "n3"]  # three distinct nodes, the third is the last
    assert task.attempt == 3 and task.exit_code == 1
    assert "3 distinct nodes" in task.message


def test_no_eligible_node_left_fails_instead_of_hanging(
    jobqd: Jobqd, node_factory: Callable[..., NodeProc]
) -> None:
    node_factory(jobqd.address, "only", slots=1)
    online(jobqd, 1)
    job = submit(jobqd, pb.JobSpec(name="bad", tasks=[pb.TaskSpec(commands=[sh("exit 3")])]))
    done = wait_status(jobqd, job.id, *TERMINAL)
    assert done.status == pb.JOB_STATUS_FAILED
    task = jobqd.jobs.GetTask(js.GetTaskRequest(task_id=f"{job.id}.0")).task
    assert "no eligible node left" in task.message


def test_fail_fast_exit_code_fails_at_once(jobqd: Jobqd, node_factory: Callable[..., NodeProc]) -> None:
    node_factory(jobqd.address, "n1", slots=1)
    node_factory(jobqd.address, "n2", slots=1)
    online(jobqd, 2)
    job = submit(
        jobqd,
        pb.JobSpec(
            name="usage",
            tasks=[pb.TaskSpec(commands=[sh("exit 2")])],
            failure_policy=pb.FailurePolicy(fail_fast_exit_codes=[2]),
        ),
    )
    assert wait_status(jobqd, job.id, *TERMINAL).status == pb.JOB_STATUS_FAILED
    task = jobqd.jobs.GetTask(js.GetTaskRequest(task_id=f"{job.id}.0")).task
    assert task.attempt == 1 and "fail-fast" in task.message


def test_killed_node_tasks_are_interrupted_and_finish_elsewhere(
    jobqd_factory: Callable[..., Jobqd], node_factory: Callable[..., NodeProc]
) -> None:
    d = jobqd_factory("--node-timeout", "2", "--heartbeat-interval", "0.5")
    victim = node_factory(d.address, "victim", slots=1)
    online(d, 1)
    job = submit(d, pb.JobSpec(name="long", tasks=[pb.TaskSpec(commands=[sh("sleep 1.5; echo ok")])]))
    eventually(lambda: get(d, job.id).task_counts.active == 1, what="task running on victim")
    node_factory(d.address, "survivor", slots=1)
    victim.kill()
    done = wait_status(d, job.id, *TERMINAL, timeout=60)
    assert done.status == pb.JOB_STATUS_COMPLETED
    task = d.jobs.GetTask(js.GetTaskRequest(task_id=f"{job.id}.0")).task
    assert task.node == "survivor" and task.interruptions == 1 and task.attempt == 2
    assert not task.failed_by  # an interruption is not a failure


def test_daemon_killed_while_tasks_run_readopts_them_and_nothing_runs_twice(
    jobqd: Jobqd, node_factory: Callable[..., NodeProc], tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    node_factory(jobqd.address, "n1", slots=4)
    node_factory(jobqd.address, "n2", slots=4)
    online(jobqd, 2)
    script = f"echo $JOBQ_ATTEMPT >> {marks}/$JOBQ_TASK_ID; sleep 3; echo done"
    job = submit(
        jobqd,
        pb.JobSpec(
            name="survive", array=pb.ArraySpec(template=pb.TaskSpec(commands=[sh(script)]), start=0, end=7)
        ),
    )
    eventually(lambda: len(list(marks.iterdir())) == 8, what="all 8 started on their nodes")
    jobqd.kill()
    time.sleep(0.5)
    jobqd.start()  # same port: the nodes reconnect and report what they still run
    done = wait_status(jobqd, job.id, *TERMINAL, timeout=60)
    assert done.status == pb.JOB_STATUS_COMPLETED
    for t in jobqd.jobs.ListTasks(js.ListTasksRequest(job_id=job.id)).tasks:
        assert t.attempt == 1, f"{t.id} was started again after the restart"
        assert (marks / t.id).read_text().split() == ["1"]  # ran exactly once
        assert log_lines(jobqd, t.id)[-1] == "done"


def test_cancel_kills_the_running_processes(
    jobqd: Jobqd, node_factory: Callable[..., NodeProc], tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    node_factory(jobqd.address, "n1", slots=3)
    online(jobqd, 1)
    job = submit(
        jobqd,
        pb.JobSpec(
            name="cancel-me",
            array=pb.ArraySpec(
                template=pb.TaskSpec(commands=[sh(f"echo $$ > {pids}/{{index}}; exec sleep 60")]),
                start=0,
                end=2,
            ),
        ),
    )
    eventually(
        lambda: len(list(pids.iterdir())) == 3 and all(p.read_text().strip() for p in pids.iterdir()),
        what="3 pids",
    )
    running = [int(p.read_text()) for p in pids.iterdir()]
    jobqd.jobs.CancelJobs(js.JobActionRequest(job_ids=[job.id]))
    done = wait_status(jobqd, job.id, pb.JOB_STATUS_CANCELED, timeout=30)
    assert done.task_counts.canceled == 3

    def gone() -> bool:
        for pid in running:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            return False
        return True

    eventually(gone, timeout=15, what="task processes gone")


def test_pause_lets_active_tasks_finish_and_resume_continues(
    jobqd: Jobqd, node_factory: Callable[..., NodeProc]
) -> None:
    node_factory(jobqd.address, "n1", slots=2)
    online(jobqd, 1)
    job = submit(
        jobqd,
        pb.JobSpec(
            name="pausable",
            array=pb.ArraySpec(template=pb.TaskSpec(commands=[sh("sleep 1")]), start=0, end=5),
        ),
    )
    eventually(lambda: get(jobqd, job.id).task_counts.active == 2, what="2 active")
    p = jobqd.jobs.PauseJobs(js.JobActionRequest(job_ids=[job.id])).jobs[0]
    assert p.status == pb.JOB_STATUS_PAUSE_REQUESTED
    paused = wait_status(jobqd, job.id, pb.JOB_STATUS_PAUSED, timeout=30)
    assert paused.task_counts.completed == 2 and paused.task_counts.paused == 4
    time.sleep(0.5)
    assert get(jobqd, job.id).task_counts.active == 0  # nothing new started while paused
    jobqd.jobs.ResumeJobs(js.JobActionRequest(job_ids=[job.id]))
    assert wait_status(jobqd, job.id, *TERMINAL).status == pb.JOB_STATUS_COMPLETED


def test_allowlist_refuses_other_programs_with_a_clear_message(
    jobqd: Jobqd, node_factory: Callable[..., NodeProc]
) -> None:
    node_factory(
        jobqd.address, "strict", "--allow-command", "/bin/echo", "--allow-command", "/usr/bin/echo", slots=1
    )
    online(jobqd, 1)
    job = submit(
        jobqd,
        pb.JobSpec(
            name="rm", tasks=[pb.TaskSpec(commands=[cmd("exec", argv=["/bin/rm", "-rf", "/nonexistent"])])]
        ),
    )
    done = wait_status(jobqd, job.id, *TERMINAL)
    assert done.status == pb.JOB_STATUS_FAILED
    task = jobqd.jobs.GetTask(js.GetTaskRequest(task_id=f"{job.id}.0")).task
    assert "command not allowed" in task.message and "/bin/rm" in task.message


def test_drain_takes_no_new_work_and_stop_interrupts(
    jobqd: Jobqd, node_factory: Callable[..., NodeProc]
) -> None:
    node_factory(jobqd.address, "a", slots=1)
    node_factory(jobqd.address, "b", slots=1)
    online(jobqd, 2)
    jobqd.nodes.DrainNode(ns.DrainNodeRequest(name="b"))
    job = submit(
        jobqd,
        pb.JobSpec(
            name="drained",
            array=pb.ArraySpec(template=pb.TaskSpec(commands=[sh("sleep 0.2")]), start=0, end=3),
        ),
    )
    assert wait_status(jobqd, job.id, *TERMINAL).status == pb.JOB_STATUS_COMPLETED
    assert {t.node for t in jobqd.jobs.ListTasks(js.ListTasksRequest(job_id=job.id)).tasks} == {"a"}
    assert jobqd.nodes.GetNode(ns.GetNodeRequest(name="b")).node.state == pb.NODE_STATE_DRAINED
    jobqd.nodes.ResumeNode(ns.ResumeNodeRequest(name="b"))
    long = submit(jobqd, pb.JobSpec(name="long", tasks=[pb.TaskSpec(commands=[sh("sleep 30")])]))
    eventually(lambda: get(jobqd, long.id).task_counts.active == 1, what="running")
    where = jobqd.jobs.GetTask(js.GetTaskRequest(task_id=f"{long.id}.0")).task.node
    jobqd.nodes.DrainNode(ns.DrainNodeRequest(name=where, stop=True))
    moved = eventually(
        lambda: (t := jobqd.jobs.GetTask(js.GetTaskRequest(task_id=f"{long.id}.0")).task).attempt == 2 and t,
        what="task moved to the other node",
    )
    assert moved.node != where and moved.interruptions == 1 and not moved.failed_by
    jobqd.jobs.CancelJobs(js.JobActionRequest(job_ids=[long.id]))
    wait_status(jobqd, long.id, pb.JOB_STATUS_CANCELED)


def test_tail_log_follows_a_running_task(jobqd: Jobqd, node_factory: Callable[..., NodeProc]) -> None:
    node_factory(jobqd.address, "n1", slots=1)
    online(jobqd, 1)
    job = submit(
        jobqd,
        pb.JobSpec(
            name="chatty",
            tasks=[pb.TaskSpec(commands=[sh("for i in 1 2 3 4 5; do echo line $i; sleep 0.2; done")])],
        ),
    )
    eventually(lambda: get(jobqd, job.id).task_counts.active == 1, what="running")
    lines = [
        line
        for r in jobqd.jobs.TailTaskLog(
            js.TailTaskLogRequest(task_id=f"{job.id}.0", lines=100, follow=True), timeout=30
        )
        for line in r.lines
    ]
    assert lines == [f"line {i}" for i in range(1, 6)]
    assert wait_status(jobqd, job.id, *TERMINAL).status == pb.JOB_STATUS_COMPLETED


def test_failed_task_cancels_its_dependents_and_the_job_still_ends(
    jobqd: Jobqd, node_factory: Callable[..., NodeProc]
) -> None:
    node_factory(jobqd.address, "n1", slots=2)
    online(jobqd, 1)
    job = submit(
        jobqd,
        pb.JobSpec(
            name="dag",
            tasks=[
                pb.TaskSpec(name="setup", commands=[sh("exit 1")]),
                pb.TaskSpec(name="render", depends_on=["setup"], commands=[sh("true")]),
                pb.TaskSpec(name="other", commands=[sh("true")]),
                pb.TaskSpec(name="more", commands=[sh("true")]),
            ],
            failure_policy=pb.FailurePolicy(max_attempts=1, fail_fraction=0.5),
        ),
    )
    done = wait_status(jobqd, job.id, *TERMINAL)
    assert done.status == pb.JOB_STATUS_FAILED  # 1 failed < threshold 2, but nothing else can progress
    by_name = {t.name: t for t in jobqd.jobs.ListTasks(js.ListTasksRequest(job_id=job.id)).tasks}
    assert by_name["setup"].status == pb.TASK_STATUS_FAILED
    assert by_name["render"].status == pb.TASK_STATUS_CANCELED
    assert "dependency 'setup' failed" in by_name["render"].message
    assert by_name["other"].status == pb.TASK_STATUS_COMPLETED
