import pytest

from jobwire.contracts.v1 import subjects as sj

pytestmark = pytest.mark.integration


async def test_streams_are_declared_and_redeclaring_is_harmless(clean_bus):
    from jobwire.runtime.bus import declare_streams

    await declare_streams(clean_bus)
    names = {s.config.name for s in await clean_bus.js.streams_info()}
    assert {sj.CMD_STREAM, sj.EXEC_STREAM, sj.REPORT_STREAM, sj.EVT_STREAM, sj.LOG_STREAM} <= names


async def test_publish_is_deduplicated_by_msg_id(clean_bus):
    first = await clean_bus.publish(sj.cmd_subject("submit"), b"{}", msg_id="same")
    second = await clean_bus.publish(sj.cmd_subject("submit"), b"{}", msg_id="same")
    assert not first.duplicate and second.duplicate
    info = await clean_bus.js.stream_info(sj.CMD_STREAM)
    assert info.state.messages == 1
