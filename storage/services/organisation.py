"""Districts and schools."""

from __future__ import annotations

from sqlalchemy import func, select

from storage.enums import AuditAction
from storage.errors import Conflict, NotFound
from storage.models import District, School
from storage.repositories import audit
from storage.schemas.organisation import DistrictIn, SchoolIn, SchoolOut
from storage.services.base import ServiceBase


class OrganisationService(ServiceBase):
    async def add_district(self, data: DistrictIn, *, actor_id: int | None = None) -> int:
        async with self.sessionmaker.begin() as session:
            if await session.scalar(select(District.id).where(District.code == data.code)):
                raise Conflict("district.exists", code=data.code)
            district = District(code=data.code, name=data.name, province=data.province)
            session.add(district)
            await session.flush()
            await audit.record(session, actor_id=actor_id, action=AuditAction.CREATE, row=district)
            return district.id

    async def upsert_schools(
        self, rows: list[SchoolIn], *, actor_id: int | None = None
    ) -> tuple[int, int, int]:
        """Create or update schools by ministry code in one transaction: (created, updated, unchanged)."""
        created = updated = unchanged = 0
        async with self.sessionmaker.begin() as session:
            districts = {d.code: d.id for d in await session.scalars(select(District))}
            for row in rows:
                district_id = districts.get(row.district_code)
                if district_id is None:
                    raise NotFound("district", code=row.district_code)
                school = await session.scalar(select(School).where(School.code == row.code))
                if school is None:
                    school = School(
                        district_id=district_id,
                        code=row.code,
                        name=row.name,
                        level=row.level,
                        address=row.address,
                    )
                    session.add(school)
                    await session.flush()
                    await audit.record(session, actor_id=actor_id, action=AuditAction.CREATE, row=school)
                    created += 1
                    continue
                before = audit.snapshot(school)
                school.district_id, school.name = district_id, row.name
                school.level, school.address = row.level, row.address
                if audit.snapshot(school) == before:
                    unchanged += 1
                    continue
                await session.flush()
                await audit.record(
                    session, actor_id=actor_id, action=AuditAction.UPDATE, row=school, before=before
                )
                updated += 1
        return created, updated, unchanged

    async def add_school(self, data: SchoolIn, *, actor_id: int | None = None) -> SchoolOut:
        async with self.sessionmaker.begin() as session:
            if await session.scalar(select(School.id).where(School.code == data.code)):
                raise Conflict("school.exists", code=data.code)
        await self.upsert_schools([data], actor_id=actor_id)
        school = await self.school_by_code(data.code)
        assert school is not None
        return school

    async def school_by_code(self, code: str) -> SchoolOut | None:
        async with self.sessionmaker() as session:
            school = await session.scalar(select(School).where(School.code == code.strip().upper()))
            return SchoolOut.model_validate(school) if school else None

    async def district_id_by_code(self, code: str) -> int:
        async with self.sessionmaker() as session:
            district_id = await session.scalar(
                select(District.id).where(District.code == code.strip().upper())
            )
        if district_id is None:
            raise NotFound("district", code=code)
        return district_id

    async def list_schools(self, district_id: int | None = None) -> list[SchoolOut]:
        async with self.sessionmaker() as session:
            query = select(School).order_by(School.level, School.name)
            if district_id is not None:
                query = query.where(School.district_id == district_id)
            return [SchoolOut.model_validate(s) for s in await session.scalars(query)]

    async def counts(self) -> dict[str, int]:
        async with self.sessionmaker() as session:
            return {
                "districts": await session.scalar(select(func.count(District.id))) or 0,
                "schools": await session.scalar(select(func.count(School.id))) or 0,
            }
