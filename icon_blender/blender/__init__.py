"""bpy glue: thin functions that turn the core's arrays into Blender data (import, animation, camera, FBX)."""
