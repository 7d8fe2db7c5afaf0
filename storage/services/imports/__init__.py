"""ImportService: bulk entry by Excel — a verdict for every row before anything is written, then an
idempotent upsert by natural keys in one transaction, audited.

The file is read by `exports.reader` (python-calamine; the table and its kind found from the headers).
Each row is validated with the domain's own schemas and rules — `StudentIn` and the student service's
plan, `NeedIn`, `DoseIn` with `judge_dose`, `BatchIn`/`DonorIn` with `check_event_date`, `HandoverIn`
with the handover rules — so the chat and the file accept exactly the same records.

Natural keys: student code; the student's need; student + dose number; batch + student (an active
handover); school + donor + date received + device type for batches. A row whose values equal what is
stored is "unchanged" and writes nothing, so the same file twice changes nothing the second time.

In the chat the checked upload waits in `pending_upload` (it survives a restart) until the person
confirms; confirming reads it again and plans again inside the write transaction, so what is written
is judged against the database as it is then.
"""

from storage.services.imports.plans import PLANS
from storage.services.imports.service import ImportService

__all__ = ["PLANS", "ImportService"]
