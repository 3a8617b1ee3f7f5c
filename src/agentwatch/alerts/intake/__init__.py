"""AiSOC alert intake: OCSF events submitted as one alert, and alerts from outside tools."""
