"""Expression maps baked in a head's own UV layout: load the mesh and its albedo (`mesh`), draw views of it
(`raster`, `views`), carry the model's shading change from each view back onto the texels (`bake`), and write the
maps with a manifest an engine can read (`manifest`)."""
