"""The depth_node entry point: a missing dependency is one line and exit status 2."""

import sys

from stereo_depth_ros import node_entry


def test_a_node_that_cannot_be_imported_is_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, 'stereo_depth_ros.node', None)  # import fails
    assert node_entry.main([]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('depth_node: cannot start: ')
    assert 'python3 -m colcon build' in lines[0] and sys.executable in lines[0]
