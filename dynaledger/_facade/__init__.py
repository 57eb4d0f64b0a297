"""The :class:`~dynaledger.Ledger`'s operations, one class per capability.

``Ledger`` combines them; each method opens the call scope and hands plain
values to a service. Nothing here is public: use ``dynaledger.Ledger``.
"""
