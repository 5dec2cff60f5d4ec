"""Talking to vision-language models: the asyncio client (`client`) and answer parsing (`answers`).

Nothing is re-exported here, so that importing the parser does not import the openai SDK.
"""
