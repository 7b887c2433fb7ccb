"""A journal request as the body of the journal API (``carebus_contracts.erp_journal_api``)."""

from __future__ import annotations

from carebus_contracts.erp import JournalEntryRequested
from carebus_contracts.erp_journal_api import Dimensions, JournalBody, JournalLineBody


def journal_body(request: JournalEntryRequested, key: str) -> JournalBody:
    return JournalBody(
        journal_id=request.journal_id,
        company=request.company,
        posting_date=request.posting_date,
        description=request.description,
        reference=key,
        lines=[
            JournalLineBody(
                line_number=line.line_number,
                account=line.account,
                side=str(line.side),
                amount_minor=line.amount.amount_minor,
                currency=line.amount.currency,
                dimensions=Dimensions(
                    cost_centre=line.dimensions.cost_centre,
                    department=line.dimensions.department,
                    location=line.dimensions.location,
                    payer_class=(
                        None
                        if line.dimensions.payer_class is None
                        else str(line.dimensions.payer_class)
                    ),
                    provider=line.dimensions.provider,
                ),
                memo=line.memo,
            )
            for line in request.lines
        ],
    )
