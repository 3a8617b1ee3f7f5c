"""The AI investigator of a case and its Investigation Ledger: every prompt, model answer, tool
call, tool result, citation and report appended in order, hash-chained, and replayable."""
