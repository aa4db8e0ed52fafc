"""ament-style lint checks: flake8 at 99 columns and pep257 docstrings."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ['stereo_depth_ros', 'test', 'launch', 'setup.py', 'tools']


def _run(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', module, *args], cwd=ROOT,
                          capture_output=True, text=True)


@pytest.mark.linter
def test_flake8():
    pytest.importorskip('flake8', reason='flake8 not installed (make install has it)')
    result = _run('flake8', *SOURCES)  # 99 columns: setup.cfg
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.linter
def test_pep257():
    pytest.importorskip('pydocstyle', reason='pydocstyle not installed (make install has it)')
    result = _run('pydocstyle', 'stereo_depth_ros')  # pep257 and what it leaves out: setup.cfg
    assert result.returncode == 0, result.stdout + result.stderr
