"""The ledger: the SQL store of releases and their hash-chained event log (`store`, `schema`), the
witness that signs the chain's head outside the database (`witness`), the audit that checks both
(`audit`), and the notifications sent from the log (`notify`)."""
