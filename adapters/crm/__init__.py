"""CRM adapters (issue 16): one per vendor, each a `Sender` (`adapters.ports`) that carries
out one `CrmRecord` (`domain.crm`) per outbox item with the vendor's maintained client, and
classifies the answer as the outbox needs it (`adapters.crm.common`)."""
