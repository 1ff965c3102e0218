"""Source connectors, one module (or package) each: ``csv``, ``http``, ``ldap``,
``salesforce`` (also a sink). ``kinds`` reads a connector file as the kind it names,
sources and the sinks of ``outbox`` alike.
"""
