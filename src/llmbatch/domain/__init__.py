"""Domain: plain objects and pure policies. No database, broker, network or vendor SDK here."""
