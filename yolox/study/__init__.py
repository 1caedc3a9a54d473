"""Paired multi-seed studies: does an attention variant beat the baseline by more than seed noise?"""
