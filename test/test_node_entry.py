"""The depth_node entry point: a missing dependency is one line and exit status 2."""

import sys

import pytest

from stereo_depth_ros import node_entry


@pytest.mark.parametrize('missing, advice', [('cv2', 'python3 -m colcon build'),
                                             ('rclpy', 'source /opt/ros/')])
def test_a_missing_dependency_is_one_line(monkeypatch, capsys, missing, advice):
    monkeypatch.setitem(sys.modules, 'stereo_depth_ros.node', None)
    error = ModuleNotFoundError(f"No module named '{missing}'", name=missing)

    def fail(name, *args, **kwargs):
        raise error

    monkeypatch.setattr('builtins.__import__', fail)
    status = node_entry.main([])
    monkeypatch.undo()
    assert status == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('depth_node: cannot start: ')
    assert advice in lines[0] and sys.executable in lines[0]


def test_a_broken_package_keeps_its_traceback(monkeypatch):
    monkeypatch.setitem(sys.modules, 'stereo_depth_ros.node', None)  # ModuleNotFoundError
    with pytest.raises(ModuleNotFoundError):
        node_entry.main([])
