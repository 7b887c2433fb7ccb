-- Issue #19 (docs/decisions/025). revenue_integrity: a completed visit no charge arrived for
-- is a gap found by watching, not an input that failed; it is resolved by the charge
-- arriving, without a person (status resolved, action auto_resolve in its history).
-- receiver_rejection: an outbound feed's receiver (billing, scheduling) refused a message.
ALTER TABLE carebus_exceptions.exception_record
    DROP CONSTRAINT exception_record_category_check,
    ADD CONSTRAINT exception_record_category_check CHECK (category IN
        ('contract', 'masterdata', 'mapping', 'erp_rejection', 'transport',
         'revenue_integrity', 'receiver_rejection')),
    DROP CONSTRAINT exception_record_status_check,
    ADD CONSTRAINT exception_record_status_check
        CHECK (status IN ('open', 'redriven', 'discarded', 'resolved'));

ALTER TABLE carebus_exceptions.exception_action
    DROP CONSTRAINT exception_action_action_check,
    ADD CONSTRAINT exception_action_action_check
        CHECK (action IN ('redrive', 'bulk_redrive', 'discard', 'auto_resolve'));
