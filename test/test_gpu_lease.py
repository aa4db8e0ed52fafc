"""tools/gpu_lease/run.sh with a fake trainer: exit status, summary, what comes back.

The fake ``PY`` runs the helper scripts with this Python and stands in for ``-m
stereo_depth_ros.training.train``: the job ``fail`` exits 2 at once (as a missing weights
file does), ``ok`` writes final weights, ``slow`` trains until SIGINT and then writes its
checkpoint, as the trainer does (with ``FAKE_FAIL_RESUME`` set, ``--resume`` fails at once).
Each call takes a second or two.
"""

import os
import shutil
import stat
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / 'tools' / 'gpu_lease' / 'run.sh'

pytestmark = pytest.mark.skipif(shutil.which('bash') is None or shutil.which('timeout') is None,
                                reason='needs bash and timeout')

FAKE = """#!/bin/bash
case $1 in
  -c) exit 0 ;;
  -m) shift 2 ;;
  *) exec {python} "$@" ;;
esac
echo "args: $*"
if [ -n "${{FAKE_FAIL_RESUME:-}}" ] && [[ " $* " == *" --resume "* ]]; then
  echo "train: error: cannot resume" >&2; exit 2
fi
while [ $# -gt 0 ]; do
  case $1 in --config) config=$2; shift ;; --out-dir) out=$2; shift ;; esac
  shift
done
case $(basename "$config" .yaml) in
  fail) echo "train: error: weights file runs/missing.safetensors does not exist" >&2; exit 2 ;;
  ok) mkdir -p "$out" && echo weights > "$out/costnet.safetensors"
      echo "finished 7 steps in 0.1 min" > "$out/train.log" ;;
  slow) mkdir -p "$out"
        trap 'echo "ckpt of $out" > "$out/checkpoint.safetensors"; echo "{{\\"step\\": 42}}" \\
              > "$out/checkpoint.json"; echo "interrupted at step 42"; exit 130' INT
        while :; do sleep 0.1; done ;;
esac
"""


@pytest.fixture
def repo(tmp_path):
    """A repository root with the configs fail, ok and slow, a packed .gpu and a fake PY."""
    root = tmp_path / 'repo'
    (root / 'config').mkdir(parents=True)
    for name, seed in (('fail', 5), ('ok', 6), ('slow', 7)):
        (root / 'config' / f'{name}.yaml').write_text(f'seed: {seed}\n')
    (root / '.gpu' / 'photos').mkdir(parents=True)
    (root / '.gpu' / 'unlabeled_webp').mkdir()
    fake = tmp_path / 'fake_python'
    fake.write_text(FAKE.format(python=sys.executable))
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    (tmp_path / 'home').mkdir()
    return root


def lease(root: Path, out: str, **settings: str) -> tuple[int, float, str]:
    """Run run.sh in ``root``; return its exit status, seconds and summary."""
    env = {**os.environ, 'HOME': str(root.parent / 'home'), 'OUT': str(root.parent / out),
           'PY': str(root.parent / 'fake_python'), 'DEV': 'cpu', 'MIN': '0.1', **settings}
    start = time.monotonic()
    done = subprocess.run(['bash', str(RUN)], cwd=root, env=env, capture_output=True,
                          text=True, timeout=60)
    summary = root.parent / out / 'summary.txt'
    return (done.returncode, time.monotonic() - start,
            summary.read_text() if summary.exists() else done.stdout + done.stderr)


def test_a_job_that_fails_at_once_ends_the_call_at_once_and_is_named(repo):
    status, seconds, summary = lease(repo, 'out', JOBS='fail ok')
    assert status == 1
    assert seconds < 20  # no sampler or other job holds the call
    assert 'fail: FAILED (exit status 2)' in summary
    assert 'weights file runs/missing.safetensors does not exist' in summary
    assert 'ok: OK' in summary
    back = sorted(path.name for path in (repo.parent / 'out').iterdir())
    assert back == ['logs.tgz', 'ok.safetensors', 'summary.txt']
    with tarfile.open(repo.parent / 'out' / 'logs.tgz') as archive:
        assert {'fail.log', 'ok.log', 'ok/train.log'} <= set(archive.getnames())


def test_the_limit_brings_the_checkpoint_back_and_a_continuation_resumes_it(repo):
    status, seconds, summary = lease(repo, 'out1', JOBS='slow ok', LIMIT='2', GRACE='5')
    assert status == 4
    assert seconds < 20
    assert 'slow: TIMEOUT (SIGINT at 2 s)' in summary and 'step 42' in summary
    returned = (repo.parent / 'out1' / 'slow.checkpoint.safetensors').read_text()
    assert returned == 'ckpt of runs/lease/1/slow\n'
    # The second call continues both from what the first returned; the first's folders stay.
    status, _, summary = lease(repo, 'out2', JOBS='slow ok', LIMIT='2', GRACE='5',
                               CONTINUE='1')
    assert status == 4
    second = repo / 'runs' / 'lease' / '2'
    assert '--resume' in (second / 'slow.log').read_text()
    assert (second / 'slow' / 'checkpoint.safetensors').is_file()
    assert '--weights runs/lease/1/back/ok.safetensors' in (second / 'ok.log').read_text()
    assert (repo / 'runs' / 'lease' / '1' / 'ok' / 'costnet.safetensors').is_file()
    seeds = [line.split(': seed ')[1].split(',')[0] for line in summary.splitlines()
             if ': seed ' in line]
    first = (repo / 'runs' / 'lease' / '1' / 'seeds.txt').read_text().split()
    assert len(set(seeds + first)) == 4  # new seeds in each call, none the configs'
    assert not {'5', '6', '7'} & set(seeds + first)
    # A resumed job that fails at once has no checkpoint of its own: the one it was given
    # does not come back as if it were.
    status, _, summary = lease(repo, 'out3', JOBS='slow', CONTINUE='1', FAKE_FAIL_RESUME='1')
    assert (status, 'slow: FAILED (exit status 2)' in summary) == (1, True)
    assert 'cannot resume' in summary
    assert sorted(path.name for path in (repo.parent / 'out3').iterdir()) == [
        'logs.tgz', 'summary.txt']


def test_calls_that_cannot_work_are_refused_before_training(repo):
    status, seconds, summary = lease(repo, 'out', JOBS='ok nosuch')
    assert (status, 'no config/nosuch.yaml' in summary) == (2, True)
    status, _, summary = lease(repo, 'out', JOBS='ok', CONTINUE='1')
    assert (status, 'nothing to continue ok' in summary) == (2, True)
    status, _, summary = lease(repo, 'out', JOBS='ok ok ok ok ok ok ok')
    assert (status, '1 to 6' in summary) == (2, True)
    status, _, summary = lease(repo, 'out', JOBS='ok', SEEDS='1 2')
    assert (status, 'SEEDS has 2 seeds for 1 jobs' in summary) == (2, True)
