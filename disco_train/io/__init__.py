"""Files, locks, atomic writes, Hub access, video files and the user-facing error family: the ground every other
package stands on.

Nothing here is configuration, a model or a codec; it is what any command needs to touch the disk or the network
safely. Torch-free, and may import nothing else of disco_train (numpy and PyAV only where video needs them).
"""
