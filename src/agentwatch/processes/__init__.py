"""One server as several processes on one machine (``processes``): each a whole node on the
same store and the same listening socket, their live streams joined by a relay."""
