"""Guardian: the engine loop, executor, reconciliation and the service layer shared by every edge."""
