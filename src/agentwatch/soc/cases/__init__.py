"""Cases (AiSOC ``/api/v1/cases``): an analyst's unit of work that groups alerts, with its
comments and a timeline. Tables in :mod:`.schema`, store functions in :mod:`.store`, the
routes in :mod:`.api`."""
