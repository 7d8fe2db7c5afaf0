from tests.factories import make_world


async def test_world_builds(services):
    world = await make_world(services)
    assert len(world.staff_ids) == 10 and len(world.student_ids) == 6
