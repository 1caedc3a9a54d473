"""torchrun's process-group variables from SLURM's task variables, and the messages for inconsistent ones."""

import pytest

from yolox.utils.dist import first_slurm_host, slurm_process_group_env, tasks_on_node
from yolox.utils.errors import UserError

TASK_3_OF_16 = {"SLURM_PROCID": "3", "SLURM_NTASKS": "16", "SLURM_LOCALID": "3", "SLURM_NODEID": "0",
                "SLURM_JOB_ID": "4711", "SLURM_STEP_ID": "0", "SLURM_STEP_NODELIST": "gpu[07-08]",
                "SLURM_STEP_TASKS_PER_NODE": "8(x2)"}


@pytest.mark.parametrize(("nodelist", "first"), [
    ("gpu07", "gpu07"), ("gpu[07-08]", "gpu07"), ("gpu[003,010-012],cpu1", "gpu003"), ("a1,b[2-3]", "a1"),
    ("rack[2-3]-node[09-10]", "rack2-node09"), ("10.0.0.5", "10.0.0.5"),
])
def test_first_host_of_a_node_list(nodelist: str, first: str) -> None:
    assert first_slurm_host(nodelist) == first


def test_tasks_per_node_notation() -> None:
    assert [tasks_on_node("8(x2),4", node) for node in range(3)] == [8, 8, 4]
    with pytest.raises(ValueError):
        tasks_on_node("8(x2)", 2)


def test_a_task_of_an_srun_step_gets_torchruns_variables() -> None:
    group = slurm_process_group_env(TASK_3_OF_16)
    assert group == {"RANK": "3", "WORLD_SIZE": "16", "LOCAL_RANK": "3", "LOCAL_WORLD_SIZE": "8",
                     "MASTER_ADDR": "gpu07", "MASTER_PORT": str(20000 + 4711)}
    # Rendezvous given by the user wins; the job id is also read from the older SLURM_JOBID.
    custom = {**TASK_3_OF_16, "MASTER_ADDR": "head", "MASTER_PORT": "29400"}
    assert slurm_process_group_env(custom)["MASTER_ADDR"] == "head"
    assert slurm_process_group_env(custom)["MASTER_PORT"] == "29400"
    older = {key: value for key, value in TASK_3_OF_16.items() if key != "SLURM_JOB_ID"} | {"SLURM_JOBID": "45000"}
    assert slurm_process_group_env(older)["MASTER_PORT"] == str(20000 + 45000 % 20000)


def test_no_slurm_task_torchrun_or_the_batch_script_itself_leave_the_environment_alone() -> None:
    assert slurm_process_group_env({}) is None
    assert slurm_process_group_env({**TASK_3_OF_16, "RANK": "0", "WORLD_SIZE": "2"}) is None
    batch_script = {key: value for key, value in TASK_3_OF_16.items() if key != "SLURM_STEP_ID"} | {"SLURM_PROCID": "0",
                                                                                                    "SLURM_LOCALID": "0"}
    assert slurm_process_group_env(batch_script) is None
    one_task = {**TASK_3_OF_16, "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NTASKS": "1"}
    assert slurm_process_group_env(one_task) is None


@pytest.mark.parametrize(("changes", "named"), [
    ({"SLURM_PROCID": "16"}, ["SLURM_PROCID=16", "SLURM_NTASKS=16"]),
    ({"SLURM_PROCID": "two"}, ["SLURM_PROCID='two'"]),
    ({"SLURM_NTASKS": "0", "SLURM_PROCID": "1", "SLURM_LOCALID": "0"}, ["SLURM_NTASKS=0"]),
    ({"SLURM_LOCALID": "9", "SLURM_PROCID": "9"}, ["SLURM_LOCALID=9", "8 tasks"]),
    ({"SLURM_LOCALID": "5", "SLURM_PROCID": "4"}, ["SLURM_LOCALID=5", "SLURM_PROCID=4"]),
    ({"SLURM_LOCALID": None}, ["SLURM_LOCALID is not set"]),
    ({"SLURM_JOB_ID": None}, ["SLURM_JOB_ID is not set"]),
    ({"SLURM_STEP_NODELIST": None}, ["SLURM_STEP_NODELIST", "MASTER_ADDR"]),
    ({"SLURM_STEP_NODELIST": "gpu[07-08"}, ["not a SLURM host list"]),
    ({"SLURM_STEP_TASKS_PER_NODE": "lots"}, ["SLURM_STEP_TASKS_PER_NODE"]),
])
def test_inconsistent_variables_are_named(changes: dict, named: list[str]) -> None:
    environ = {key: value for key, value in {**TASK_3_OF_16, **changes}.items() if value is not None}
    with pytest.raises(UserError) as error:
        slurm_process_group_env(environ)
    message = str(error.value)
    assert message.startswith("inconsistent SLURM task variables") and "\n" not in message
    for words in named:
        assert words in message, message
