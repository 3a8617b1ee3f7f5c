"""Detection-as-code proposals: Sigma rules proposed, reviewed, evaluated on real data, decided by a
second person and promoted into the live rule set (AiSOC's ``/api/v1/detection-proposals``)."""
