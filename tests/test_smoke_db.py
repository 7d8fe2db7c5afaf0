from sqlalchemy import func, select

from storage.models import VaccineProduct


async def test_migrated_database_has_reference_data(services):
    async with services.sessionmaker() as session:
        count = await session.scalar(select(func.count(VaccineProduct.id)))
    assert count == 10
